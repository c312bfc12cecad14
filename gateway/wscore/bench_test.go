package wscore

import "testing"

func BenchmarkTextFrame(b *testing.B) {
	payload := []byte(`{"type":"friend_request","id":"5f0c2b1e-0d7e-4c1a-9d55-7f1a2b3c4d5e","ts":1764150000000,"data":{"from":{"id":"7","name":"alice"}}}`)
	b.ReportAllocs()
	for b.Loop() {
		_ = TextFrame(payload)
	}
}
