package proxy

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/brothaman/brothaman-go/pkg/ns"
)

// udpEcho answers every datagram with "echo: " + payload.
func udpEcho(t *testing.T, pc net.PacketConn) {
	t.Helper()
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			n, addr, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(append([]byte("echo: "), buf[:n]...), addr)
		}
	}()
}

func startUDPProxy(t *testing.T, target string, tune func(*Proxy)) (string, *Proxy) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tg, err := ns.ParseTarget("udp", target)
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{
		Listeners:        []Listener{{pc: pc, name: "dns", target: tg}},
		Backend:          Static{NewGeneration(ns.Current(), nil, "test namespace")},
		ConnectTimeout:   5 * time.Second,
		ContainerTimeout: 5 * time.Second,
		MaxConns:         64,
		DrainTimeout:     time.Second,
		UDPIdle:          300 * time.Millisecond,
		Log:              testLog(t),
	}
	if tune != nil {
		tune(p)
	}
	ctx, cancel := context.WithCancel(context.Background())
	exited := make(chan struct{})
	go func() { p.Serve(ctx); close(exited) }()
	t.Cleanup(func() { cancel(); <-exited })
	return pc.LocalAddr().String(), p
}

func udpAsk(t *testing.T, addr, msg string) (string, error) {
	t.Helper()
	c, err := net.Dial("udp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(msg)); err != nil {
		return "", err
	}
	buf := make([]byte, 2048)
	n, err := c.Read(buf)
	return string(buf[:n]), err
}

func TestUDPFlowsAndIdleExpiry(t *testing.T) {
	backend, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	udpEcho(t, backend)
	addr, p := startUDPProxy(t, backend.LocalAddr().String(), nil)
	for i := 0; i < 3; i++ {
		msg := fmt.Sprintf("query %d", i)
		got, err := udpAsk(t, addr, msg)
		if err != nil || got != "echo: "+msg {
			t.Fatalf("reply = %q, %v; want %q", got, err, "echo: "+msg)
		}
	}
	if n := p.total.Load(); n != 3 {
		t.Errorf("flows = %d; want 3 (one per client address)", n)
	}
	deadline := time.Now().Add(5 * time.Second)
	for p.active.Load() != 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if a := p.active.Load(); a != 0 {
		t.Errorf("active flows after the idle timeout = %d; want 0", a)
	}
}

func TestUDPColdStartResends(t *testing.T) {
	tmp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := tmp.LocalAddr().String()
	tmp.Close()
	addr, _ := startUDPProxy(t, port, nil)
	go func() {
		time.Sleep(300 * time.Millisecond)
		pc, err := net.ListenPacket("udp", port)
		if err != nil {
			t.Error(err)
			return
		}
		udpEcho(t, pc)
	}()
	got, err := udpAsk(t, addr, "early")
	if err != nil || got != "echo: early" {
		t.Fatalf("reply to a datagram sent before the server bound = %q, %v; want %q", got, err, "echo: early")
	}
}

func TestUDPFlowLimit(t *testing.T) {
	backend, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	udpEcho(t, backend)
	addr, p := startUDPProxy(t, backend.LocalAddr().String(), func(p *Proxy) {
		p.UDPFlowsMax = 1
		p.UDPIdle = 5 * time.Second
	})
	if got, err := udpAsk(t, addr, "one"); err != nil || got != "echo: one" {
		t.Fatalf("first client: %q, %v", got, err)
	}
	c, _ := net.Dial("udp", addr)
	defer c.Close()
	c.Write([]byte("two"))
	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if n, err := c.Read(make([]byte, 64)); err == nil {
		t.Fatalf("second client served beyond --udp-flows-max (%d bytes)", n)
	}
	if r := p.refused.Load(); r != 1 {
		t.Errorf("refused = %d; want 1", r)
	}
}

// TestUDPDatagramForClosedFlowStartsNewOne: a datagram that finds its
// client's flow closed (it ended between the lookup and the write) is sent
// on a new flow, not dropped.
func TestUDPDatagramForClosedFlowStartsNewOne(t *testing.T) {
	backend, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	udpEcho(t, backend)
	client, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	out, err := net.ListenPacket("udp", "127.0.0.1:0") // the proxy's listening socket
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	tg, err := ns.ParseTarget("udp", backend.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{Log: testLog(t), UDPIdle: 100 * time.Millisecond}
	p.defaults()
	p.drained = make(chan struct{})
	p.settle = newSettler(time.Hour)
	l := Listener{pc: out, name: "dns", target: tg}
	// a flow whose socket is closed, still in the map
	dead, err := net.DialUDP("udp", nil, backend.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	dead.Close()
	key := client.LocalAddr().String()
	flows := &udpFlows{m: map[string]*udpFlow{key: {client: client.LocalAddr(), conn: dead}}}
	p.dispatch(l, flows, client.LocalAddr(), []byte("late"))
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	n, _, err := client.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "echo: late" {
		t.Fatalf("reply to a datagram for a closed flow = %q, %v; want %q", buf[:n], err, "echo: late")
	}
	if got := p.total.Load(); got != 1 {
		t.Errorf("flows started = %d; want 1", got)
	}
}
