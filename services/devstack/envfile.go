package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/redms/redms/pkg/testinfra/s3local"
)

// envVars are the settings a client of the stack needs, in file order.
func (s *stack) envVars() [][2]string {
	local := s.local()
	var loaderMetrics []string
	for _, a := range s.loaderMetrics {
		loaderMetrics = append(loaderMetrics, "http://"+a+"/metrics")
	}
	return [][2]string{
		{"REDMS_SOURCE_URL", s.pg.URL(sourceDB)},
		{"REDMS_WAREHOUSE_URL", s.warehouseURL},
		{"REDMS_WAREHOUSE_DIALECT", local.Dialect},
		{"REDMS_NATS_URL", s.natsURL},
		{"REDMS_STREAM", streamName},
		{"REDMS_SLOT", slotName},
		{"REDMS_S3_ENDPOINT", s.s3.Endpoint()},
		{"REDMS_S3_REGION", s3local.Region},
		{"REDMS_S3_BUCKET", bucket},
		{"REDMS_S3_ACCESS_KEY_ID", s3local.AccessKeyID},
		{"REDMS_S3_SECRET_ACCESS_KEY", s3local.SecretAccessKey},
		{"REDMS_DEVSTACK_WAREHOUSE_DB_URL", s.warehouseDBURL},
		{"REDMS_DEVSTACK_CAPTURE_METRICS", "http://" + s.captureMetrics + "/metrics"},
		{"REDMS_DEVSTACK_LOADER_METRICS", strings.Join(loaderMetrics, ",")},
		{"REDMS_DEVSTACK_DIR", s.dir},
		{"REDMS_DEVSTACK_PID", fmt.Sprint(os.Getpid())},
	}
}

// renderEnv renders KEY=value lines (values are URLs and names without
// spaces or quotes, so the file reads the same to a shell's `set -a; .
// FILE`, docker --env-file and systemd's EnvironmentFile=).
func renderEnv(vars [][2]string) []byte {
	var b strings.Builder
	b.WriteString("# written by redms-devstack up once every service was ready; removed when it stops\n")
	for _, kv := range vars {
		b.WriteString(kv[0] + "=" + kv[1] + "\n")
	}
	return []byte(b.String())
}

// writeFileAtomic writes data to path through a temp file and a rename, so
// a reader that waits for path never sees half of it.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
