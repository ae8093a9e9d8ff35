package sockdiag

import (
	"encoding/binary"
	"testing"

	"golang.org/x/sys/unix"
)

func msg(typ uint16, seq uint32, payload []byte) []byte {
	b := make([]byte, (unix.NLMSG_HDRLEN+len(payload)+3)&^3)
	ne := binary.NativeEndian
	ne.PutUint32(b[0:], uint32(unix.NLMSG_HDRLEN+len(payload)))
	ne.PutUint16(b[4:], typ)
	ne.PutUint32(b[8:], seq)
	copy(b[unix.NLMSG_HDRLEN:], payload)
	return b
}

func TestEach(t *testing.T) {
	b := append(msg(unix.SOCK_DIAG_BY_FAMILY, 7, []byte{1, 2, 3}), msg(unix.NLMSG_DONE, 7, nil)...)
	var got []uint16
	if err := Each(b, func(typ uint16, seq uint32, data []byte) bool {
		if seq != 7 {
			t.Errorf("seq %d; want 7", seq)
		}
		if typ == unix.SOCK_DIAG_BY_FAMILY && len(data) != 3 {
			t.Errorf("payload %v; want 3 bytes", data)
		}
		got = append(got, typ)
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[1] != unix.NLMSG_DONE {
		t.Errorf("types %v; want SOCK_DIAG_BY_FAMILY then NLMSG_DONE", got)
	}
	bad := msg(unix.NLMSG_DONE, 1, nil)
	binary.NativeEndian.PutUint32(bad[0:], 400)
	if err := Each(bad, func(uint16, uint32, []byte) bool { return true }); err == nil {
		t.Error("Each of a message longer than the buffer: nil; want an error")
	}
	n := 0
	Each(b, func(uint16, uint32, []byte) bool { n++; return false })
	if n != 1 {
		t.Errorf("fn returning false: called %d times; want 1", n)
	}
}

func TestPutHeader(t *testing.T) {
	b := make([]byte, unix.NLMSG_HDRLEN+SizeofReqV2)
	PutHeader(b, unix.NLM_F_DUMP, 9)
	ne := binary.NativeEndian
	if ne.Uint32(b[0:]) != uint32(len(b)) || ne.Uint16(b[4:]) != unix.SOCK_DIAG_BY_FAMILY ||
		ne.Uint16(b[6:]) != unix.NLM_F_REQUEST|unix.NLM_F_DUMP || ne.Uint32(b[8:]) != 9 {
		t.Errorf("header %v", b[:unix.NLMSG_HDRLEN])
	}
}
