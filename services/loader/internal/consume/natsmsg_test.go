package consume

import "github.com/nats-io/nats.go"

type natsMsg struct {
	subject string
	header  nats.Header
	data    []byte
}

func (m *natsMsg) nats() *nats.Msg {
	return &nats.Msg{Subject: m.subject, Header: m.header, Data: m.data}
}
