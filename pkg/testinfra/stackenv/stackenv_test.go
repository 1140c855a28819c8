package stackenv

import (
	"os/exec"
	"strings"
	"testing"
	"time"
)

// lookup is the value a process started with env sees for key (the last).
func lookup(env []string, key string) string {
	v := ""
	for _, kv := range env {
		if k, val, _ := strings.Cut(kv, "="); k == key {
			v = val
		}
	}
	return v
}

func TestLoaderEnv(t *testing.T) {
	t.Setenv("REDMS_WAREHOUSE_URL", "postgres://from-my-shell")
	t.Setenv("AWS_REGION", "eu-west-9")
	s := Stack{NATSURL: "nats://127.0.0.1:1", WarehouseURL: "postgres://wh", Dialect: "redshift", Bucket: "b",
		S3: S3{Endpoint: "http://127.0.0.1:2", Region: "us-east-1", AccessKeyID: "k", SecretAccessKey: "s"}}
	env := s.Loader("r-1", 2*time.Second, "127.0.0.1:3", "REDMS_LEASE_TTL=3s")
	for key, want := range map[string]string{
		"REDMS_STREAM": "REDMS_WAL", "REDMS_REPLICA_ID": "r-1", "REDMS_WAREHOUSE_URL": "postgres://wh",
		"REDMS_WAREHOUSE_DIALECT": "redshift", "REDMS_WINDOW_DURATION": "2s", "REDMS_LEASE_TTL": "3s",
		"REDMS_S3_ENDPOINT": "http://127.0.0.1:2", "REDMS_METRICS_ADDR": "127.0.0.1:3", "AWS_REGION": "",
	} {
		if got := lookup(env, key); got != want {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}
	// os/exec, too, gives the child the last value of a key.
	cmd := exec.Command("/bin/sh", "-c", "echo $REDMS_LEASE_TTL")
	cmd.Env = env
	out, err := cmd.Output()
	if err != nil || strings.TrimSpace(string(out)) != "3s" {
		t.Errorf("child sees REDMS_LEASE_TTL=%q (%v), want 3s", out, err)
	}
}

func TestCaptureEnvAndRsemu(t *testing.T) {
	s := Stack{SourceURL: "postgres://src", NATSURL: "nats://n", S3: S3{Endpoint: "http://e", Region: "r", AccessKeyID: "k", SecretAccessKey: "s"}}
	env := s.Capture("slot1", "127.0.0.1:4", "REDMS_DATABASE=shop")
	if lookup(env, "REDMS_SLOT") != "slot1" || lookup(env, "REDMS_SOURCE_URL") != "postgres://src" || lookup(env, "REDMS_DATABASE") != "shop" {
		t.Errorf("capture env %v", env)
	}
	if v := lookup(env, "REDMS_BATCH_RECORDS"); v != "" {
		t.Errorf("capture env REDMS_BATCH_RECORDS=%q: the loader reads batches, stacks run capture's default", v)
	}
	args := strings.Join(s.RsemuArgs("127.0.0.1:5", "postgres://wh"), " ")
	if args != "--listen 127.0.0.1:5 --postgres postgres://wh --s3-endpoint http://e --s3-region r --s3-access-key-id k --s3-secret-access-key s" {
		t.Errorf("rsemu args %q", args)
	}
	if got := RsemuURL("127.0.0.1:5", "warehouse"); got != "postgres://postgres@127.0.0.1:5/warehouse?sslmode=disable" {
		t.Errorf("RsemuURL = %q", got)
	}
}
