package main

import "testing"

func TestRenderEnv(t *testing.T) {
	got := string(renderEnv([][2]string{{"REDMS_NATS_URL", "nats://127.0.0.1:4222"}, {"REDMS_S3_BUCKET", "b"}}))
	want := "# written by redms-devstack up once every service was ready; removed when it stops\n" +
		"REDMS_NATS_URL=nats://127.0.0.1:4222\nREDMS_S3_BUCKET=b\n"
	if got != want {
		t.Errorf("renderEnv:\n%s\nwant:\n%s", got, want)
	}
}
