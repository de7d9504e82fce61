package notify

import (
	"fmt"
	"strings"
)

const maxTopicLen = 128

// validTopic applies the naming rules of PROTOCOL.md.
func validTopic(t string) error {
	if p := topicProblem(t); p != "" {
		return fmt.Errorf("%w: %s", ErrInvalidTopic, p)
	}
	return nil
}

// topicProblem says what breaks the naming rules in t, or "" when nothing does.
func topicProblem(t string) string {
	if t == "" || len(t) > maxTopicLen {
		return fmt.Sprintf("name must be 1 to %d bytes", maxTopicLen)
	}
	if t[0] == '.' || t[len(t)-1] == '.' {
		return "name may not start or end with a dot"
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '.', c == '_', c == '-', c == ':', c == '@', c == '/':
		default:
			return fmt.Sprintf("character %q not allowed", c)
		}
	}
	return ""
}

// topicGranted reports whether one of the token's grants matches topic. A grant is a topic
// name or a pattern: "*" matches one dot-separated segment, a final ">" one or more segments.
func topicGranted(grants []string, topic string) bool {
	for _, g := range grants {
		if matchTopic(g, topic) {
			return true
		}
	}
	return false
}

func matchTopic(pattern, topic string) bool {
	if pattern == topic {
		return true
	}
	for {
		p, prest, pmore := strings.Cut(pattern, ".")
		if p == ">" && !pmore {
			return topic != ""
		}
		t, trest, tmore := strings.Cut(topic, ".")
		if p != "*" && p != t {
			return false
		}
		if !pmore || !tmore {
			return pmore == tmore
		}
		pattern, topic = prest, trest
	}
}
