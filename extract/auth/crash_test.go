package auth

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/contacts-etl/contacts-etl/extract/sim"
)

// TestHelperChild is the child process of the crash and two-process tests:
// it gets a token for $CETL_AUTH_LOC from the store $CETL_AUTH_STORE
// (refreshing at $CETL_AUTH_BASE) and uses it once.
func TestHelperChild(t *testing.T) {
	if os.Getenv("CETL_AUTH_CHILD") != "1" {
		t.Skip("helper process")
	}
	base, loc := os.Getenv("CETL_AUTH_BASE"), os.Getenv("CETL_AUTH_LOC")
	src := NewSource(NewStore(os.Getenv("CETL_AUTH_STORE")), loc, Options{OAuth: oauthConf(base)})
	tok, err := src.Token()
	if err != nil {
		fmt.Println("child error:", err)
		os.Exit(1)
	}
	if !works(t, base, tok.AccessToken) {
		fmt.Println("child error: token rejected")
		os.Exit(1)
	}
	fmt.Println("child ok")
	os.Exit(0)
}

func runChild(t *testing.T, base, store, loc, crashAt string) (string, error) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), "CETL_AUTH_CHILD=1", "CETL_AUTH_BASE="+base, "CETL_AUTH_STORE="+store, "CETL_AUTH_LOC="+loc, CrashEnv+"="+crashAt)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func killed(err error) bool {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	return ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL
}

var crashPoints = []string{PointBeforeRequest, PointAfterResponse, PointWriteTemp, PointBeforeRename, PointAfterRename}

// TestCrashDuringRefresh kills a refreshing process at each point of a
// refresh, then runs another: it must get access, and the store must end
// up holding a working token that is never one already spent.
//
// Between the server rotating the token and the new pair being durable
// (after-response, write-temp, before-rename) a strictly single-use server
// has spent the stored refresh token: the next run finds the refresh
// marker, is refused with invalid_grant and recovers with no user through
// the Reconnect API. Against a server with a refresh grace period, the
// replayed refresh itself recovers and no reconnect happens.
func TestCrashDuringRefresh(t *testing.T) {
	inWindow := map[string]bool{PointAfterResponse: true, PointWriteTemp: true, PointBeforeRename: true}
	for _, grace := range []time.Duration{time.Minute, 0} {
		for _, point := range crashPoints {
			t.Run(fmt.Sprintf("grace=%v/%s", grace, point), func(t *testing.T) {
				srv, base := startSim(t, sim.Config{Contacts: 1, RefreshGrace: grace})
				path := filepath.Join(t.TempDir(), "t.json")
				st := NewStore(path)
				loc := srv.Locations()[0]
				old := login(t, srv, base, st, loc)
				expire(t, st, loc)
				out, err := runChild(t, base, path, loc, point)
				if !killed(err) {
					t.Fatalf("child not killed at %s: %v\n%s", point, err, out)
				}
				if _, err := st.Load(); err != nil {
					t.Fatalf("store unreadable after kill: %v", err)
				}
				if point != PointAfterRename {
					expire(t, st, loc) // the killed run may have left a valid token
				}
				out, err = runChild(t, base, path, loc, "")
				if err != nil {
					t.Fatalf("run after kill at %s failed: %v\n%s", point, err, out)
				}
				wantReconnects := int64(0)
				if grace == 0 && inWindow[point] {
					wantReconnects = 1
				}
				if n := srv.Stats().Reconnects; n != wantReconnects {
					t.Errorf("reconnects %d, want %d", n, wantReconnects)
				}
				saved, err := st.Get(loc)
				if err != nil {
					t.Fatal(err)
				}
				if !saved.RefreshingSince.IsZero() || saved.Rejected != "" {
					t.Errorf("marker or rejection left after recovery: %v %q", saved.RefreshingSince, saved.Rejected)
				}
				if saved.RefreshToken == old.RefreshToken && point != PointBeforeRequest {
					t.Errorf("store still holds the spent refresh token")
				}
				// The stored refresh token itself still works.
				expire(t, st, loc)
				before := srv.Stats().Refreshes
				if _, err := NewSource(st, loc, Options{OAuth: oauthConf(base)}).Token(); err != nil {
					t.Fatalf("stored refresh token does not work: %v", err)
				}
				if srv.Stats().Refreshes != before+1 {
					t.Error("no refresh happened")
				}
			})
		}
	}
}

// TestTwoProcessesRefreshOnce starts two processes on one store whose
// token needs a refresh: one refreshes, the other waits and reuses it.
func TestTwoProcessesRefreshOnce(t *testing.T) {
	// Slow token answers make the two overlap.
	srv, base := startSim(t, sim.Config{Contacts: 1, Faults: sim.Faults{Token: true, RateSlow: 1, SlowDelay: 300 * time.Millisecond, MaxPerRequest: 1}})
	path := filepath.Join(t.TempDir(), "t.json")
	st := NewStore(path)
	loc := srv.Locations()[0]
	login(t, srv, base, st, loc)
	expire(t, st, loc)
	srv.ResetStats()
	var wg sync.WaitGroup
	outs := make([]string, 2)
	errs := make([]error, 2)
	for i := range 2 {
		wg.Go(func() { outs[i], errs[i] = runChild(t, base, path, loc, "") })
	}
	wg.Wait()
	for i := range 2 {
		if errs[i] != nil {
			t.Errorf("process %d: %v\n%s", i, errs[i], outs[i])
		}
	}
	if n := srv.Stats().Refreshes; n != 1 {
		t.Errorf("refreshes %d, want exactly 1", n)
	}
}

// A kill during the reconnect that recovers a lost refresh token (between
// the new pair's answer and its write) is itself recovered by the next
// run's reconnect: the marker stays until a pair is saved.
func TestCrashDuringReconnect(t *testing.T) {
	srv, base := startSim(t, sim.Config{Contacts: 1})
	path := filepath.Join(t.TempDir(), "t.json")
	st := NewStore(path)
	loc := srv.Locations()[0]
	login(t, srv, base, st, loc)
	expire(t, st, loc)
	for i := range 2 { // the refresh, then the reconnect, killed after the answer
		if out, err := runChild(t, base, path, loc, PointAfterResponse); !killed(err) {
			t.Fatalf("child %d not killed: %v\n%s", i, err, out)
		}
	}
	if n := srv.Stats().Reconnects; n != 1 {
		t.Fatalf("reconnects before recovery %d, want 1", n)
	}
	if out, err := runChild(t, base, path, loc, ""); err != nil {
		t.Fatalf("run after a killed reconnect: %v\n%s", err, out)
	}
	saved, _ := st.Get(loc)
	if srv.Stats().Reconnects != 2 || !saved.RefreshingSince.IsZero() || !works(t, base, saved.AccessToken) {
		t.Errorf("reconnects %d, marker %v", srv.Stats().Reconnects, saved.RefreshingSince)
	}
}
