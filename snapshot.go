package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/hashicorp/raft"
)

// state.bin, the tutorial's snapshot format: the map as one JSON object of
// strings. It is written and read here by streaming, so a snapshot of a
// large map never needs a second copy of it in memory as bytes.

// fsmSnapshot is a frozen view of the state: no one writes to data until
// release is called, and peers is a copy, so Persist may take its time
// without a lock. hashicorp/raft calls Release once after Persist returns (or
// instead of it, if the snapshot is abandoned), never during it.
type fsmSnapshot struct {
	data    map[string]string // user keys and their deadline records
	peers   map[string]string
	keys    int // user keys in data
	release func()
	// persisted, if set, hears of each snapshot written: how many keys and
	// how long it took (for the live view).
	persisted func(keys int, took time.Duration)
}

// Persist streams the state as one JSON object.
func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	start := time.Now()
	if err := s.write(sink); err != nil {
		if cerr := sink.Cancel(); cerr != nil {
			return fmt.Errorf("%w (and cancel: %v)", err, cerr)
		}
		return err
	}
	if err := sink.Close(); err != nil {
		return err
	}
	if s.persisted != nil {
		s.persisted(s.keys, time.Since(start))
	}
	return nil
}

func (s *fsmSnapshot) write(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 1<<16)
	buf := make([]byte, 0, 256)
	buf = append(buf, '{')
	first := true
	put := func(k, v string) error {
		if !first {
			buf = append(buf, ',')
		}
		first = false
		buf = appendJSONString(buf, k)
		buf = append(buf, ':')
		buf = appendJSONString(buf, v)
		_, err := bw.Write(buf)
		buf = buf[:0]
		return err
	}
	for k, v := range s.data {
		if err := put(k, v); err != nil {
			return fmt.Errorf("write snapshot: %w", err)
		}
	}
	for k, v := range s.peers {
		if err := put(peerKeyPrefix+k, v); err != nil {
			return fmt.Errorf("write snapshot: %w", err)
		}
	}
	buf = append(buf, '}')
	if _, err := bw.Write(buf); err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	return nil
}

// Release gives the frozen map back to the cache (see cache.Release).
func (s *fsmSnapshot) Release() { s.release() }

// readSnapshot decodes state.bin, splitting off our peer records. It accepts
// what encoding/json accepts for a map[string]string (except a bare null),
// and yields the same map (a fuzz test holds it to that), but streams.
func readSnapshot(r io.Reader) (data, peers map[string]string, err error) {
	all, err := newJSONReader(r).object()
	if err != nil {
		return nil, nil, fmt.Errorf("decode state: %w", err)
	}
	peers = make(map[string]string)
	for k, v := range all {
		if strings.HasPrefix(k, peerKeyPrefix) {
			peers[strings.TrimPrefix(k, peerKeyPrefix)] = v
			delete(all, k)
		}
	}
	return all, peers, nil
}

var errSyntax = errors.New("invalid JSON")

// jsonReader parses one JSON object of strings from a stream.
type jsonReader struct {
	r   *bufio.Reader
	raw []byte // a string's bytes between its quotes, reused
	out []byte // its unescaped form, reused
	off int64  // bytes consumed, for error messages
}

func newJSONReader(r io.Reader) *jsonReader {
	return &jsonReader{r: bufio.NewReaderSize(r, 1<<16)}
}

func (p *jsonReader) fail(what string) error {
	return fmt.Errorf("%w: %s near byte %d", errSyntax, what, p.off)
}

// next returns the next byte that is not JSON white space.
func (p *jsonReader) next() (byte, error) {
	for {
		c, err := p.r.ReadByte()
		if err == io.EOF {
			return 0, p.fail("unexpected end")
		}
		if err != nil {
			return 0, err
		}
		p.off++
		if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return c, nil
		}
	}
}

func (p *jsonReader) object() (map[string]string, error) {
	m := make(map[string]string)
	c, err := p.next()
	if err != nil {
		return nil, err
	}
	if c != '{' {
		return nil, p.fail("want an object")
	}
	c, err = p.next()
	for err == nil && c != '}' {
		if c != '"' {
			return nil, p.fail("want a string key")
		}
		k, err := p.str()
		if err != nil {
			return nil, err
		}
		if c, err = p.next(); err != nil {
			return nil, err
		} else if c != ':' {
			return nil, p.fail("want ':'")
		}
		if c, err = p.next(); err != nil {
			return nil, err
		} else if c != '"' {
			return nil, p.fail("want a string value")
		}
		v, err := p.str()
		if err != nil {
			return nil, err
		}
		m[k] = v
		if c, err = p.next(); err != nil {
			return nil, err
		}
		switch c {
		case ',':
			c, err = p.next()
			if err == nil && c == '}' {
				return nil, p.fail("trailing comma")
			}
		case '}':
		default:
			return nil, p.fail("want ',' or '}'")
		}
	}
	if err != nil {
		return nil, err
	}
	// Nothing but white space may follow.
	for {
		c, err := p.r.ReadByte()
		if err == io.EOF {
			return m, nil
		}
		if err != nil {
			return nil, err
		}
		if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return nil, p.fail("data after the object")
		}
	}
}

// str reads a string whose opening quote was consumed.
func (p *jsonReader) str() (string, error) {
	p.raw = p.raw[:0]
	for {
		chunk, err := p.r.ReadSlice('"')
		p.off += int64(len(chunk))
		p.raw = append(p.raw, chunk...)
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF {
			return "", p.fail("unterminated string")
		}
		if err != nil {
			return "", err
		}
		// The quote ends the string unless an odd number of backslashes
		// escapes it.
		n := 0
		for i := len(p.raw) - 2; i >= 0 && p.raw[i] == '\\'; i-- {
			n++
		}
		if n%2 == 0 {
			break
		}
	}
	raw := p.raw[:len(p.raw)-1]
	simple := true
	for _, c := range raw {
		if c < 0x20 {
			return "", p.fail("control character in string")
		}
		if c == '\\' || c >= utf8.RuneSelf {
			simple = false
		}
	}
	if simple {
		return string(raw), nil
	}
	out, ok := unquote(p.out[:0], raw)
	p.out = out
	if !ok {
		return "", p.fail("bad escape in string")
	}
	return string(out), nil
}

// unquote appends the unescaped form of a JSON string's inside to dst, as
// encoding/json decodes it: invalid UTF-8 and lone surrogates become U+FFFD.
func unquote(dst, s []byte) ([]byte, bool) {
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\\':
			if i+1 >= len(s) {
				return dst, false
			}
			e := s[i+1]
			i += 2
			switch e {
			case '"', '\\', '/':
				dst = append(dst, e)
			case 'b':
				dst = append(dst, '\b')
			case 'f':
				dst = append(dst, '\f')
			case 'n':
				dst = append(dst, '\n')
			case 'r':
				dst = append(dst, '\r')
			case 't':
				dst = append(dst, '\t')
			case 'u':
				r, ok := hex4(s[i:])
				if !ok {
					return dst, false
				}
				i += 4
				if utf16.IsSurrogate(r) {
					r2, ok := rune(-1), false
					if i+1 < len(s) && s[i] == '\\' && s[i+1] == 'u' {
						r2, ok = hex4(s[i+2:])
					}
					if d := utf16.DecodeRune(r, r2); ok && d != utf8.RuneError {
						r = d
						i += 6
					} else {
						r = utf8.RuneError
					}
				}
				dst = utf8.AppendRune(dst, r)
			default:
				return dst, false
			}
		case c < utf8.RuneSelf:
			dst = append(dst, c)
			i++
		default:
			r, size := utf8.DecodeRune(s[i:])
			i += size
			dst = utf8.AppendRune(dst, r) // RuneError for invalid bytes
		}
	}
	return dst, true
}

func hex4(s []byte) (rune, bool) {
	if len(s) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range s[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// appendJSONString appends s as a JSON string literal. It is the JSON that
// encoding/json writes, without the HTML escaping and one allocation per call;
// runs of bytes that need no escaping are copied at once.
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r != utf8.RuneError || size != 1 {
				i += size
				continue
			}
		}
		dst = append(dst, s[start:i]...)
		switch {
		case c >= utf8.RuneSelf: // invalid UTF-8, as encoding/json does
			dst = append(dst, `\ufffd`...)
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c == '\n':
			dst = append(dst, '\\', 'n')
		case c == '\r':
			dst = append(dst, '\\', 'r')
		case c == '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		i++
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// checkSnapshots refuses a data dir whose snapshots raft would silently skip
// or choke on. hashicorp/raft's file store skips, with a warning, a
// snapshot whose meta.json does not parse; once the log was compacted behind
// that snapshot, the node then panicked on the first entry it could not
// find, in a loop. A state.bin shorter or longer than its meta.json says
// (a torn copy, a full disk) is caught here too, before raft's CRC check
// would make it skip the snapshot. Directories ending in .tmp are snapshots
// that were never finished: raft ignores them, and so does this check.
// Nothing is changed on disk.
func checkSnapshots(dir string) error {
	root := filepath.Join(dir, "snapshots")
	entries, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read snapshots in %s: %w", root, err)
	}
	for _, e := range entries {
		if !e.IsDir() || strings.HasSuffix(e.Name(), ".tmp") {
			continue
		}
		snap := filepath.Join(root, e.Name())
		b, err := os.ReadFile(filepath.Join(snap, "meta.json"))
		if err != nil {
			return fmt.Errorf("snapshot %s: %w; refusing to start (nothing was changed)", snap, err)
		}
		var meta raft.SnapshotMeta
		if err := json.Unmarshal(b, &meta); err != nil {
			return fmt.Errorf("snapshot %s: meta.json is not valid: %v; refusing to start (nothing was changed)", snap, err)
		}
		st, err := os.Stat(filepath.Join(snap, "state.bin"))
		if err != nil {
			return fmt.Errorf("snapshot %s: %w; refusing to start (nothing was changed)", snap, err)
		}
		if st.Size() != meta.Size {
			return fmt.Errorf("snapshot %s: state.bin has %d bytes, meta.json says %d; refusing to start (nothing was changed)", snap, st.Size(), meta.Size)
		}
	}
	return nil
}
