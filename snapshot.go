package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc64"
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
	data    *kvStore // user keys and their deadline records
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
	if err := s.data.each(put); err != nil {
		return fmt.Errorf("write snapshot: %w", err)
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
// and yields the same map (a fuzz test holds it to that), but streams, into
// the store the cache will hold: no second copy of the map on the way.
func readSnapshot(r io.Reader) (data *kvStore, peers map[string]string, err error) {
	data, peers = newKVStore(), make(map[string]string)
	err = newJSONReader(r).object(func(k, v string) {
		if rest, ok := strings.CutPrefix(k, peerKeyPrefix); ok {
			peers[rest] = v
		} else {
			data.set(k, v)
		}
	})
	if err != nil {
		return nil, nil, fmt.Errorf("decode state: %w", err)
	}
	return data, peers, nil
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

// object reads one object of strings, calling put for each member in
// order (a later duplicate overwrites, as encoding/json's map does).
func (p *jsonReader) object(put func(k, v string)) error {
	c, err := p.next()
	if err != nil {
		return err
	}
	if c != '{' {
		return p.fail("want an object")
	}
	c, err = p.next()
	for err == nil && c != '}' {
		if c != '"' {
			return p.fail("want a string key")
		}
		k, err := p.str()
		if err != nil {
			return err
		}
		if c, err = p.next(); err != nil {
			return err
		} else if c != ':' {
			return p.fail("want ':'")
		}
		if c, err = p.next(); err != nil {
			return err
		} else if c != '"' {
			return p.fail("want a string value")
		}
		v, err := p.str()
		if err != nil {
			return err
		}
		put(k, v)
		if c, err = p.next(); err != nil {
			return err
		}
		switch c {
		case ',':
			c, err = p.next()
			if err == nil && c == '}' {
				return p.fail("trailing comma")
			}
		case '}':
		default:
			return p.fail("want ',' or '}'")
		}
	}
	if err != nil {
		return err
	}
	// Nothing but white space may follow.
	for {
		c, err := p.r.ReadByte()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if c != ' ' && c != '\t' && c != '\n' && c != '\r' {
			return p.fail("data after the object")
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
// (a torn copy, a full disk), or whose bytes do not match the CRC that
// meta.json records (checkCRC), is caught here too, before raft's own CRC
// check would make it skip the snapshot. Directories ending in .tmp are
// snapshots that were never finished: raft ignores them, and so does this
// check. Nothing is changed on disk.
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
		// raft's file store writes its SnapshotMeta plus the CRC of
		// state.bin (its fileSnapshotMeta, which it does not export).
		var meta struct {
			raft.SnapshotMeta
			CRC []byte
		}
		if err := json.Unmarshal(b, &meta); err != nil {
			return fmt.Errorf("snapshot %s: meta.json is not valid: %v; refusing to start (nothing was changed)", snap, err)
		}
		f, err := os.Open(filepath.Join(snap, "state.bin"))
		if err != nil {
			return fmt.Errorf("snapshot %s: %w; refusing to start (nothing was changed)", snap, err)
		}
		st, err := f.Stat()
		if err == nil && st.Size() != meta.Size {
			err = fmt.Errorf("state.bin has %d bytes, meta.json says %d", st.Size(), meta.Size)
		}
		if err == nil {
			err = checkCRC(f, meta.CRC)
		}
		f.Close()
		if err != nil {
			return fmt.Errorf("snapshot %s: %v; refusing to start (nothing was changed)", snap, err)
		}
	}
	return nil
}

// checkCRC verifies state.bin against the CRC-64 (ECMA) that raft recorded
// in meta.json, as raft's own Open does. Without it, a state.bin garbled
// without a change of size (or a garbled CRC) stopped the node with only
// "start raft (data dir …): failed to load any existing snapshots": no
// snapshot named, the reason only in an earlier log line of raft's.
func checkCRC(state io.Reader, want []byte) error {
	h := crc64.New(crc64.MakeTable(crc64.ECMA))
	if _, err := io.Copy(h, state); err != nil {
		return fmt.Errorf("read state.bin: %w", err)
	}
	if got := h.Sum(nil); !bytes.Equal(got, want) {
		return fmt.Errorf("state.bin does not match the CRC in meta.json (computed %x, recorded %x): one of them is damaged", got, want)
	}
	return nil
}

// tidySnapshotStore is raft's FileSnapshotStore, except that a snapshot that
// fails leaves nothing behind. raft's store leaves its "<id>.tmp" directory
// when Create cannot write meta.json, and when Cancel's flush fails, which it
// always does after a failed write (its bufio.Writer keeps the error, and
// finalize returns before closing or removing anything). On a full disk that
// left, at every snapshot interval, a directory, and once the partial
// state.bin of the first failure: it took the last free bytes (so a disk too
// small for a snapshot became too full for log entries) and stayed there
// after space was freed, since nothing ever removes a ".tmp" directory
// (TestFullDisk). The file handle raft leaks on that path is closed by the
// garbage collector (os.File's finalizer), which is when the space comes
// back. Two snapshots of this store never share a term and index (one is
// taken at a time, and a snapshot installed from the leader is always past
// this node's applied index), so the glob below removes only the failed one.
type tidySnapshotStore struct {
	raft.SnapshotStore
	dir string // <data dir>/snapshots
}

func (s *tidySnapshotStore) Create(version raft.SnapshotVersion, index, term uint64, conf raft.Configuration,
	confIndex uint64, trans raft.Transport) (raft.SnapshotSink, error) {
	sink, err := s.SnapshotStore.Create(version, index, term, conf, confIndex, trans)
	if err != nil {
		dirs, _ := filepath.Glob(filepath.Join(s.dir, fmt.Sprintf("%d-%d-*.tmp", term, index)))
		for _, d := range dirs {
			_ = os.RemoveAll(d) // best effort: the error returned is Create's
		}
		return nil, err
	}
	return &tidySink{SnapshotSink: sink, tmp: filepath.Join(s.dir, sink.ID()+".tmp")}, nil
}

// tidySink removes its temporary directory when the snapshot fails. After a
// successful Close the directory has been renamed, and there is none.
type tidySink struct {
	raft.SnapshotSink
	tmp string
}

func (s *tidySink) Cancel() error {
	err := s.SnapshotSink.Cancel()
	_ = os.RemoveAll(s.tmp) // best effort; raft's own Cancel removes it when it can
	return err
}

func (s *tidySink) Close() error {
	err := s.SnapshotSink.Close()
	if err != nil {
		_ = os.RemoveAll(s.tmp) // the snapshot is not there: raft's error says why
	}
	return err
}
