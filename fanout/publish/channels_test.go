package publish_test

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/herald-gw/herald/fanout/publish"
)

func TestChannelsRoundTrip(t *testing.T) {
	tests := []struct {
		name   string
		prefix string
		to     publish.Target
		want   string
	}{
		{"user", "", publish.User("42"), "user:42"},
		{"user with prefix", "app1:", publish.User("42"), "app1:user:42"},
		{"user id with colons and glob chars", "", publish.User("a:b*[c]"), "user:a:b*[c]"},
		{"socket", "", publish.Socket("n1.abc"), "socket:n1.abc"},
		{"socket with prefix", "p.", publish.Socket("n1.abc.def"), "p.socket:n1.abc.def"},
		{"broadcast", "", publish.All(), "broadcast"},
		{"broadcast with prefix", "x:", publish.All(), "x:broadcast"},
		{"broadcast except", "", publish.AllExcept("7"), "broadcast:except:7"},
		{"broadcast except with prefix", "x:", publish.AllExcept("7"), "x:broadcast:except:7"},
		{"prefix that looks like a name", "user:", publish.User("1"), "user:user:1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := publish.NewChannels(tt.prefix)
			got, err := c.Name(tt.to)
			if err != nil {
				t.Fatalf("Name(%+v): %v", tt.to, err)
			}
			if got != tt.want {
				t.Fatalf("Name(%+v) = %q, want %q", tt.to, got, tt.want)
			}
			back, ok := c.Parse(got)
			if !ok || back != tt.to {
				t.Fatalf("Parse(%q) = %+v, %v; want %+v, true", got, back, ok, tt.to)
			}
			if c.IsControl(got) {
				t.Fatalf("IsControl(%q) = true", got)
			}
		})
	}
}

func TestChannelsParseRejects(t *testing.T) {
	tests := []struct {
		name    string
		prefix  string
		channel string
	}{
		{"empty", "", ""},
		{"user without id", "", "user:"},
		{"socket without id", "", "socket:"},
		{"except without id", "", "broadcast:except:"},
		{"control", "", "herald:control"},
		{"control with prefix", "p:", "p:herald:control"},
		{"unknown", "", "news:1"},
		{"broadcast with suffix", "", "broadcastx"},
		{"missing prefix", "p:", "user:1"},
		{"other prefix", "p:", "q:user:1"},
		{"prefix only", "p:", "p:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, ok := publish.NewChannels(tt.prefix).Parse(tt.channel); ok {
				t.Fatalf("Parse(%q) with prefix %q = %+v, true; want false", tt.channel, tt.prefix, got)
			}
		})
	}
}

func TestChannelsNameRejects(t *testing.T) {
	for _, to := range []publish.Target{publish.User(""), publish.Socket(""), {}, {Kind: 9, ID: "x"}} {
		if got, err := (publish.Channels{}).Name(to); !errors.Is(err, publish.ErrInvalidTarget) {
			t.Errorf("Name(%+v) = %q, %v; want ErrInvalidTarget", to, got, err)
		}
	}
}

func TestChannelsControl(t *testing.T) {
	tests := []struct {
		prefix, channel string
		want            bool
	}{
		{"", "herald:control", true},
		{"p:", "p:herald:control", true},
		{"p:", "herald:control", false},
		{"", "p:herald:control", false},
		{"", "herald:controlx", false},
		{"", "user:1", false},
	}
	for _, tt := range tests {
		c := publish.NewChannels(tt.prefix)
		if got := c.IsControl(tt.channel); got != tt.want {
			t.Errorf("prefix %q: IsControl(%q) = %v, want %v", tt.prefix, tt.channel, got, tt.want)
		}
		if tt.want && c.Control() != tt.channel {
			t.Errorf("prefix %q: Control() = %q, want %q", tt.prefix, c.Control(), tt.channel)
		}
	}
}

func TestChannelsPatterns(t *testing.T) {
	tests := []struct {
		prefix, socket, except string
	}{
		{"", "socket:n1.*", "broadcast:except:*"},
		{"app:", "app:socket:n1.*", "app:broadcast:except:*"},
		{`a*b?[c]\d:`, `a\*b\?\[c\]\\d:socket:n1.*`, `a\*b\?\[c\]\\d:broadcast:except:*`},
	}
	for _, tt := range tests {
		c := publish.NewChannels(tt.prefix)
		if got := c.SocketPattern("n1"); got != tt.socket {
			t.Errorf("prefix %q: SocketPattern = %q, want %q", tt.prefix, got, tt.socket)
		}
		if got := c.ExceptPattern(); got != tt.except {
			t.Errorf("prefix %q: ExceptPattern = %q, want %q", tt.prefix, got, tt.except)
		}
	}
}

func TestValidNodeID(t *testing.T) {
	tests := []struct {
		id   string
		want bool
	}{
		{"n1", true},
		{"a", true},
		{"Node_01-x", true},
		{strings.Repeat("a", 64), true},
		{"", false},
		{strings.Repeat("a", 65), false},
		{"a.b", false},
		{"a*", false},
		{"a?", false},
		{"a[b]", false},
		{"a b", false},
		{"é", false},
		{"a:b", false},
	}
	for _, tt := range tests {
		if got := publish.ValidNodeID(tt.id); got != tt.want {
			t.Errorf("ValidNodeID(%q) = %v, want %v", tt.id, got, tt.want)
		}
	}
}

func TestNewNodeID(t *testing.T) {
	re := regexp.MustCompile(`^[0-9a-f]{8}$`)
	seen := make(map[string]bool)
	for range 1000 {
		id := publish.NewNodeID()
		if !re.MatchString(id) || !publish.ValidNodeID(id) {
			t.Fatalf("NewNodeID() = %q, want 8 lowercase hex characters", id)
		}
		if seen[id] {
			t.Fatalf("NewNodeID() returned %q twice in 1000 calls", id)
		}
		seen[id] = true
	}
}

func TestChannelsParseAllocs(t *testing.T) {
	c := publish.NewChannels("app:")
	allocs := testing.AllocsPerRun(100, func() {
		if _, ok := c.Parse("app:user:42"); !ok {
			t.Fatal("not parsed")
		}
		if !c.IsControl("app:herald:control") {
			t.Fatal("not control")
		}
	})
	if allocs != 0 {
		t.Fatalf("Parse and IsControl allocate %v times, want 0", allocs)
	}
}

// FuzzChannelsParse checks that Parse never panics, that what it accepts is
// exactly what Name produces, and that the control channel and the message
// channels never overlap.
func FuzzChannelsParse(f *testing.F) {
	for _, s := range []string{"user:1", "socket:n1.x", "broadcast", "broadcast:except:9", "herald:control", "p:user:", "", "user:user:"} {
		f.Add("", s)
		f.Add("p:", "p:"+s)
	}
	f.Fuzz(func(t *testing.T, prefix, channel string) {
		c := publish.NewChannels(prefix)
		to, ok := c.Parse(channel)
		if c.IsControl(channel) {
			if ok {
				t.Fatalf("prefix %q: %q is both control and %+v", prefix, channel, to)
			}
			return
		}
		if !ok {
			return
		}
		if to.Kind != publish.ToAll && to.ID == "" {
			t.Fatalf("prefix %q: Parse(%q) = %+v: empty id", prefix, channel, to)
		}
		name, err := c.Name(to)
		if err != nil || name != channel {
			t.Fatalf("prefix %q: Parse(%q) = %+v, whose Name is %q, %v", prefix, channel, to, name, err)
		}
	})
}

// Cluster names: the user and socket channels change, to carry a hash tag.
func TestShardedChannels(t *testing.T) {
	tests := []struct {
		name   string
		prefix string
		to     publish.Target
		want   string
	}{
		{"user", "", publish.User("42"), "user:{42}"},
		{"user with prefix", "app:", publish.User("42"), "app:user:{42}"},
		{"user id with braces", "", publish.User("a}b"), "user:{a}b}"},
		{"socket", "", publish.Socket("n1.abc"), "socket:{n1.abc}"},
		{"socket with prefix", "app:", publish.Socket("3f9a1c0e.8d2b4c6a1e0f9d7c"), "app:socket:{3f9a1c0e.8d2b4c6a1e0f9d7c}"},
		{"broadcast unchanged", "", publish.All(), "broadcast"},
		{"except unchanged", "", publish.AllExcept("7"), "broadcast:except:7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := publish.NewShardedChannels(tt.prefix)
			got, err := c.Name(tt.to)
			if err != nil || got != tt.want {
				t.Fatalf("Name(%+v) = %q, %v; want %q", tt.to, got, err, tt.want)
			}
			if back, ok := c.Parse(got); !ok || back != tt.to {
				t.Fatalf("Parse(%q) = %+v, %v; want %+v", got, back, ok, tt.to)
			}
		})
	}
	for _, bad := range []string{"user:42", "user:{}", "user:{42", "user:42}", "socket:n1.abc", "socket:{}", "socket:{n1.abc"} {
		if to, ok := publish.NewShardedChannels("").Parse(bad); ok {
			t.Errorf("sharded Parse(%q) = %+v, want refused", bad, to)
		}
	}
}

func TestShardedChannelsParseAllocs(t *testing.T) {
	c := publish.NewShardedChannels("app:")
	allocs := testing.AllocsPerRun(100, func() {
		if to, ok := c.Parse("app:user:{42}"); !ok || to.Kind != publish.ToUser {
			t.Fatal("user not parsed")
		}
		if to, ok := c.Parse("app:socket:{n1.abc}"); !ok || to.Kind != publish.ToSocket {
			t.Fatal("socket not parsed")
		}
	})
	if allocs != 0 {
		t.Fatalf("sharded Parse allocates %v times, want 0", allocs)
	}
}

// TestCheckUserID: with sharded names, an id whose hash tag would be empty
// (it begins with "}") is refused, and every id's names share one slot.
func TestCheckUserID(t *testing.T) {
	tests := []struct {
		name    string
		id      string
		sharded bool
		wantErr bool
	}{
		{"plain names carry any id", "}x", false, false},
		{"leading closing brace", "}x", true, true},
		{"lone closing brace", "}", true, true},
		{"closing brace inside", "a}b", true, false},
		{"opening brace", "{a", true, false},
		{"braces around", "{a}", true, false},
		{"ordinary", "42", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := publish.NewChannels("app:")
			if tt.sharded {
				c = publish.NewShardedChannels("app:")
			}
			err := c.CheckUserID(tt.id)
			if got := err != nil; got != tt.wantErr {
				t.Fatalf("CheckUserID(%q) = %v, want error %v", tt.id, err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, publish.ErrUserIDNotRoutable) {
				t.Errorf("error %v is not ErrUserIDNotRoutable", err)
			}
		})
	}
}

func TestCheckPrefix(t *testing.T) {
	for _, tt := range []struct {
		prefix string
		ok     bool
	}{
		{"", true}, {"app:", true}, {"a*[b]?:", true}, {"é:", true},
		{"{app}:", false}, {"app{", false}, {"a}", false}, {"my app:", false}, {"app\n", false}, {"app\x00", false}, {"app\u00a0", false},
	} {
		err := publish.CheckPrefix(tt.prefix)
		if (err == nil) != tt.ok || (err != nil && !errors.Is(err, publish.ErrInvalidPrefix)) {
			t.Errorf("CheckPrefix(%q) = %v, want ok %v", tt.prefix, err, tt.ok)
		}
	}
}
