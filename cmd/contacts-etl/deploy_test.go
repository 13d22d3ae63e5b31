package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestDeployExamples checks the examples in deploy/: the CronJob parses as
// YAML and forbids concurrent runs with its token store on a volume, the
// cron line has five time fields and runs `run`, and systemd-analyze
// verifies the units when it is installed.
func TestDeployExamples(t *testing.T) {
	dir := filepath.Join("..", "..", "deploy")
	b, err := os.ReadFile(filepath.Join(dir, "cronjob.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var cj struct {
		Kind string
		Spec struct {
			ConcurrencyPolicy string `yaml:"concurrencyPolicy"`
			JobTemplate       struct {
				Spec struct {
					Template struct {
						Spec struct {
							Containers []struct {
								Args         []string
								VolumeMounts []struct {
									MountPath string `yaml:"mountPath"`
								} `yaml:"volumeMounts"`
							}
						}
					}
				}
			} `yaml:"jobTemplate"`
		}
	}
	if err := yaml.Unmarshal(b, &cj); err != nil {
		t.Fatalf("cronjob.yaml: %v", err)
	}
	if cj.Kind != "CronJob" || cj.Spec.ConcurrencyPolicy != "Forbid" || len(cj.Spec.JobTemplate.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("cronjob.yaml: %+v", cj)
	}
	c := cj.Spec.JobTemplate.Spec.Template.Spec.Containers[0]
	tokensOnVolume := false
	for _, a := range c.Args {
		if p, ok := strings.CutPrefix(a, "--token-file="); ok {
			for _, m := range c.VolumeMounts {
				tokensOnVolume = tokensOnVolume || strings.HasPrefix(p, m.MountPath+"/")
			}
		}
	}
	if !tokensOnVolume || c.Args[0] != "run" {
		t.Errorf("cronjob.yaml: args %v, mounts %v", c.Args, c.VolumeMounts)
	}
	// Its flags are flags of run.
	if _, err := parseRunFlags("run", c.Args[1:], os.Stderr, new(reportFlags).register); err != nil && !strings.Contains(err.Error(), "contacts-etl.yaml") {
		t.Errorf("cronjob.yaml args: %v", err)
	}

	cron, err := os.ReadFile(filepath.Join(dir, "crontab"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(cron), "\n") {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if f := strings.Fields(l); len(f) < 7 || !strings.Contains(l, "contacts-etl run ") {
			t.Errorf("crontab line %q", l)
		}
	}

	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed: units not verified")
	}
	out, err := exec.Command(sa, "verify", filepath.Join(dir, "contacts-etl.service"), filepath.Join(dir, "contacts-etl.timer")).CombinedOutput()
	if err != nil && !strings.Contains(string(out), "/usr/local/bin/contacts-etl") {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}
