package keyslot

import (
	"testing"
	"time"
)

func TestOf(t *testing.T) {
	// Values from the Redis Cluster specification and CLUSTER KEYSLOT.
	tests := []struct {
		key  string
		want int
	}{
		{"123456789", 12739},
		{"foo", 12182},
		{"{user1000}.following", 3443},
		{"{user1000}.followers", 3443},
		{"foo{}{bar}", 8363},
		{"foo{{bar}}zap", 4015},
		{"foo{bar}{zap}", 5061},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			if got := Of(tt.key); got != tt.want {
				t.Errorf("Of(%q) = %d, want %d", tt.key, got, tt.want)
			}
		})
	}
}

func TestTagCoversEverySlot(t *testing.T) {
	began := time.Now()
	for s := range Slots {
		if got := Of("x{" + Tag(s) + "}y"); got != s {
			t.Fatalf("Tag(%d) = %q lands in slot %d", s, Tag(s), got)
		}
	}
	t.Logf("tags for %d slots worked out in %v", Slots, time.Since(began))
}
