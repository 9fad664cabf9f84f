package attack

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	testv1 "github.com/callsign-dev/callsign/internal/gen/callsign/test/v1"
)

// rawCall sends one gRPC request over a fresh HTTP/2 connection to addr with
// headers encoded as given, byte for byte: unlike grpc-go's client it sends
// values that gRPC metadata forbids (non-ASCII bytes, control characters) and
// header lists beyond the peer's limit. It returns the status from the
// trailers, or an error describing how the server refused the stream (RST_STREAM,
// GOAWAY, connection closed).
func rawCall(addr, path string, headers [][2]string) (*status.Status, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write([]byte(http2.ClientPreface)); err != nil {
		return nil, err
	}
	fr := http2.NewFramer(conn, conn)
	fr.ReadMetaHeaders = hpack.NewDecoder(64<<10, nil)
	fr.MaxHeaderListSize = 1 << 20
	if err := fr.WriteSettings(); err != nil {
		return nil, err
	}

	var block bytes.Buffer
	he := hpack.NewEncoder(&block)
	for _, f := range [][2]string{
		{":method", "POST"}, {":scheme", "http"}, {":path", path}, {":authority", addr},
		{"content-type", "application/grpc"}, {"te", "trailers"},
	} {
		_ = he.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	for _, f := range headers {
		_ = he.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	const chunk = 16 << 10
	b := block.Bytes()
	first := b[:min(len(b), chunk)]
	b = b[len(first):]
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: first, EndHeaders: len(b) == 0}); err != nil {
		return nil, err
	}
	for len(b) > 0 {
		c := b[:min(len(b), chunk)]
		b = b[len(c):]
		if err := fr.WriteContinuation(1, len(b) == 0, c); err != nil {
			return nil, err
		}
	}
	msg, _ := proto.Marshal(&testv1.ScopedRequest{Payload: "ping"})
	frame := make([]byte, 5+len(msg))
	binary.BigEndian.PutUint32(frame[1:], uint32(len(msg)))
	copy(frame[5:], msg)
	if err := fr.WriteData(1, true, frame); err != nil {
		return nil, err
	}

	fields := map[string]string{}
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return nil, fmt.Errorf("read: %w", err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				_ = fr.WriteSettingsAck()
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				_ = fr.WritePing(true, f.Data)
			}
		case *http2.RSTStreamFrame:
			return nil, fmt.Errorf("RST_STREAM %v", f.ErrCode)
		case *http2.GoAwayFrame:
			return nil, fmt.Errorf("GOAWAY %v", f.ErrCode)
		case *http2.MetaHeadersFrame:
			for _, hf := range f.Fields {
				fields[hf.Name] = hf.Value
			}
			if f.StreamEnded() {
				return trailerStatus(fields)
			}
		}
	}
}

func trailerStatus(fields map[string]string) (*status.Status, error) {
	code, err := strconv.Atoi(fields["grpc-status"])
	if err != nil {
		return nil, errors.New("no grpc-status")
	}
	p := &spb.Status{Code: int32(code), Message: fields["grpc-message"]}
	if d := fields["grpc-status-details-bin"]; d != "" {
		raw, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(d, "="))
		if err != nil {
			return nil, err
		}
		if err := proto.Unmarshal(raw, p); err != nil {
			return nil, err
		}
	}
	return status.FromProto(p), nil
}
