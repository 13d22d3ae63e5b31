// Package auth keeps the exporter's OAuth tokens: a crash-safe token store
// shared by every process on the machine, token sources that refresh
// single-use rotating refresh tokens without ever losing one, static
// (Private Integration) tokens, agency (Company) token exchange, recovery
// of a lost refresh token through the vendor's Reconnect API, and an
// http.RoundTripper that refreshes and replays once on any 401.
//
// The invariant: a refresh token is written to durable storage before the
// access token it came with is used, and two processes never refresh the
// same token at once.
package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/gofrs/flock"
	"github.com/google/renameio/v2"
)

// FileVersion is the version of the token file format.
const FileVersion = 1

// DefaultLockWait bounds how long a process waits for another one's refresh.
const DefaultLockWait = 2 * time.Minute

// ErrNoToken means the store holds no token for a key: run `auth login`.
var ErrNoToken = errors.New("no stored token")

// Token is one stored grant. Its String and LogValue never show secrets.
type Token struct {
	AccessToken  string    `json:"access_token"`
	RefreshToken string    `json:"refresh_token,omitempty"`
	TokenType    string    `json:"token_type,omitempty"`
	Expiry       time.Time `json:"expiry,omitzero"`
	Scopes       []string  `json:"scopes,omitempty"`
	UserType     string    `json:"user_type,omitempty"` // Location | Company
	LocationID   string    `json:"location_id,omitempty"`
	CompanyID    string    `json:"company_id,omitempty"`
	// RefreshingSince is set, durably, just before a refresh request is
	// sent and cleared when its answer is saved: if a process dies in
	// between, the next one knows the refresh token may be spent.
	RefreshingSince time.Time `json:"refreshing_since,omitzero"`
	SavedAt         time.Time `json:"saved_at,omitzero"`
	// Rejected is the OAuth error (invalid_grant) the token endpoint gave
	// for RefreshToken, at RejectedAt: the token is dead, and no run asks
	// again until `auth login` or `auth reconnect` replaces it.
	Rejected   string    `json:"rejected,omitempty"`
	RejectedAt time.Time `json:"rejected_at,omitzero"`
}

// String describes t without its secrets.
func (t *Token) String() string {
	if t == nil {
		return "<no token>"
	}
	return fmt.Sprintf("token(%s %s%s, expires %s, scopes %v)", t.UserType, t.LocationID, t.CompanyID, t.Expiry.Format(time.RFC3339), t.Scopes)
}

// GoString keeps %#v from printing secrets.
func (t *Token) GoString() string { return t.String() }

// File is the content of a token file: one per source.
type File struct {
	Version int               `json:"version"`
	Tokens  map[string]*Token `json:"tokens"` // key: location id, or "company"
}

// CompanyKey is the File.Tokens key of an agency (Company) token.
const CompanyKey = "company"

// DefaultPath is the token file of source under the user's config dir:
// <config dir>/contacts-etl/<source>.tokens.json.
func DefaultPath(source string) (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("token store: %w", err)
	}
	return filepath.Join(dir, "contacts-etl", source+".tokens.json"), nil
}

// Store is a token file plus its lock file (path + ".lock"). Any number of
// Stores, in any number of processes, may share a path. Safe for concurrent
// use.
type Store struct {
	path     string
	lockWait time.Duration
	mu       sync.Mutex // serialises this process's holders of the file lock
}

// NewStore returns the store at path; the file need not exist yet.
func NewStore(path string) *Store { return &Store{path: path, lockWait: DefaultLockWait} }

// Path is the token file's path.
func (s *Store) Path() string { return s.path }

// Load reads the file without locking: a reader sees the old or the new
// file, never a mix, because writes replace it atomically. A missing file
// is an empty one.
func (s *Store) Load() (*File, error) {
	b, err := os.ReadFile(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return &File{Version: FileVersion, Tokens: map[string]*Token{}}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read token store: %w", err)
	}
	var f File
	if err := json.Unmarshal(b, &f); err != nil {
		// The decoder's error may quote the file: never return it.
		return nil, fmt.Errorf("token store %s is not valid JSON", s.path)
	}
	if f.Version != FileVersion {
		return nil, fmt.Errorf("token store %s: version %d, want %d", s.path, f.Version, FileVersion)
	}
	if f.Tokens == nil {
		f.Tokens = map[string]*Token{}
	}
	return &f, nil
}

// Get returns the stored token of key, or ErrNoToken.
func (s *Store) Get(key string) (*Token, error) {
	f, err := s.Load()
	if err != nil {
		return nil, err
	}
	t := f.Tokens[key]
	if t == nil {
		return nil, fmt.Errorf("%w for %s in %s", ErrNoToken, key, s.path)
	}
	return t, nil
}

// Locked runs fn holding both this process's lock and the cross-process
// file lock. It waits for another holder up to the store's lock wait.
func (s *Store) Locked(ctx context.Context, fn func() error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := os.MkdirAll(filepath.Dir(s.path), 0o700); err != nil {
		return fmt.Errorf("token store dir: %w", err)
	}
	fl := flock.New(s.path+".lock", flock.SetPermissions(0o600))
	ctx, cancel := context.WithTimeout(ctx, s.lockWait)
	defer cancel()
	ok, err := fl.TryLockContext(ctx, 20*time.Millisecond)
	if err != nil || !ok {
		return fmt.Errorf("lock token store %s: %w", s.path, errors.Join(err, ctx.Err()))
	}
	defer fl.Unlock()
	return fn()
}

// Update reads the file, applies fn and writes it back durably, all under
// the lock.
func (s *Store) Update(ctx context.Context, fn func(*File) error) error {
	return s.Locked(ctx, func() error {
		f, err := s.Load()
		if err != nil {
			return err
		}
		if err := fn(f); err != nil {
			return err
		}
		return s.write(f, false)
	})
}

// write replaces the file atomically and durably: temp file in the same
// directory, mode 0600, fsync, rename, fsync of the directory. Call it with
// the lock held.
func (s *Store) write(f *File, refresh bool) error {
	f.Version = FileVersion
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("encode token store: %w", err)
	}
	b = append(b, '\n')
	dir := filepath.Dir(s.path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("token store dir: %w", err)
	}
	pf, err := renameio.NewPendingFile(s.path, renameio.WithPermissions(0o600), renameio.WithExistingPermissions())
	if err != nil {
		return fmt.Errorf("write token store: %w", err)
	}
	defer pf.Cleanup()
	if err := pf.Chmod(0o600); err != nil {
		return fmt.Errorf("write token store: %w", err)
	}
	half := len(b) / 2
	if _, err := pf.Write(b[:half]); err != nil {
		return fmt.Errorf("write token store: %w", err)
	}
	if refresh {
		crashPoint(PointWriteTemp)
	}
	if _, err := pf.Write(b[half:]); err != nil {
		return fmt.Errorf("write token store: %w", err)
	}
	if err := pf.Sync(); err != nil {
		return fmt.Errorf("sync token store: %w", err)
	}
	if refresh {
		crashPoint(PointBeforeRename)
	}
	if err := pf.CloseAtomicallyReplace(); err != nil {
		return fmt.Errorf("replace token store: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	if refresh {
		crashPoint(PointAfterRename)
	}
	return nil
}

// Put stores t under key, replacing what was there.
func (s *Store) Put(ctx context.Context, key string, t *Token) error {
	t.SavedAt = time.Now().UTC()
	return s.Update(ctx, func(f *File) error { f.Tokens[key] = t; return nil })
}
