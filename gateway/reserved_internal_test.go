package gateway

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestReservedType agrees with a full JSON decode (the last "type" member
// wins there, any reserved one here) on valid JSON, and refuses nothing
// that is not a JSON object.
func TestReservedType(t *testing.T) {
	tests := []struct {
		name    string
		payload string
		want    bool
	}{
		{"reconnect", `{"type":"reconnect","after_ms":1}`, true},
		{"leading whitespace", " \r\n\t{\"type\":\"welcome\"}", true},
		{"after strings holding brackets and quotes", `{"a":"}\"]{","b":[["]"],{"c":"\\"}],"type":"pong"}`, true},
		{"after numbers and literals", `{"a":1.5e3,"b":true,"c":null,"d":-0,"type":"resync"}`, true},
		{"escaped key and value", `{"\u0074ype":"replay_\u0063omplete"}`, true},
		{"an earlier duplicate", `{"type":"resync","type":"x"}`, true},
		{"nested only", `{"data":{"type":"resync"}}`, false},
		{"in an array", `[{"type":"resync"}]`, false},
		{"a string", `"{\"type\":\"resync\"}"`, false},
		{"not JSON", `type=resync`, false},
		{"empty object", `{}`, false},
		{"empty", ``, false},
		{"truncated", `{"type":"resync`, false},
		{"a prefix of a reserved type", `{"type":"resyn"}`, false},
		{"a longer word", `{"type":"resyncs"}`, false},
		{"not a string", `{"type":1}`, false},
		{"a key holding the word", `{"types":"resync"}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := reservedType([]byte(tt.payload)); got != tt.want {
				t.Errorf("reservedType(%s) = %v, want %v", tt.payload, got, tt.want)
			}
			var v struct{ Type any }
			if tt.want && json.Unmarshal([]byte(tt.payload), &v) != nil {
				t.Errorf("%s is not valid JSON", tt.payload)
			}
		})
	}
}

// BenchmarkReservedType: the cost on every published message, for a small
// notification and for one with its "type" after 100 KiB of data.
func BenchmarkReservedType(b *testing.B) {
	small := []byte(`{"inbox_id":"1764150000000-0","type":"friend_request","id":"5f0c","ts":1764150000000,"data":{"from":{"id":"7","name":"alice"}}}`)
	large := []byte(`{"data":"` + strings.Repeat("x", 100<<10) + `","list":[` + strings.Repeat(`{"a":1},`, 1000) + `{}],"type":"friend_request"}`)
	for _, c := range []struct {
		name string
		p    []byte
	}{{"small", small}, {"100KiB", large}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(c.p)))
			for b.Loop() {
				if reservedType(c.p) {
					b.Fatal("reserved")
				}
			}
		})
	}
}
