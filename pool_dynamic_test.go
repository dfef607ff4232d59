package mirror

import (
	"fmt"
	"net"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/caddyserver/caddy/v2/caddyconfig"
)

// dnsServer is a loopback DNS server whose answers a test changes: the A
// and SRV records of each name it serves.
type dnsServer struct {
	addr string
	mu   sync.Mutex
	a    map[string][]net.IP
	srv  map[string][]*dns.SRV
}

func newDNSServer(t *testing.T) *dnsServer {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	d := &dnsServer{addr: pc.LocalAddr().String(), a: map[string][]net.IP{}, srv: map[string][]*dns.SRV{}}
	started := make(chan struct{})
	s := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(d.answer), NotifyStartedFunc: func() { close(started) }}
	go func() { _ = s.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = s.Shutdown() })
	return d
}

func (d *dnsServer) answer(w dns.ResponseWriter, q *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(q)
	m.Authoritative = true
	d.mu.Lock()
	for _, question := range q.Question {
		hdr := dns.RR_Header{Name: question.Name, Class: dns.ClassINET, Ttl: 1}
		switch question.Qtype {
		case dns.TypeA:
			hdr.Rrtype = dns.TypeA
			for _, ip := range d.a[question.Name] {
				m.Answer = append(m.Answer, &dns.A{Hdr: hdr, A: ip})
			}
		case dns.TypeSRV:
			hdr.Rrtype = dns.TypeSRV
			for _, rec := range d.srv[question.Name] {
				r := *rec
				r.Hdr = hdr
				m.Answer = append(m.Answer, &r)
			}
		}
	}
	d.mu.Unlock()
	_ = w.WriteMsg(m)
}

// setA makes name's A records ips.
func (d *dnsServer) setA(name string, ips ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.a[name] = nil
	for _, ip := range ips {
		d.a[name] = append(d.a[name], net.ParseIP(ip))
	}
}

// setSRV makes name's SRV records point at targets, each host:port.
func (d *dnsServer) setSRV(name string, targets ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.srv[name] = nil
	for _, t := range targets {
		host, port, _ := net.SplitHostPort(t)
		p, _ := strconv.Atoi(port)
		d.srv[name] = append(d.srv[name], &dns.SRV{Priority: 10, Weight: 10, Port: uint16(p), Target: dns.Fqdn(host)})
	}
}

// replicasOnOnePort starts n replicas on 127.0.0.2, 127.0.0.3, ... all on
// the same port, as the pods behind one A name; it tries a few ports in
// case one is taken on another address.
func replicasOnOnePort(t *testing.T, n int) (rs []*replicaServer, port string) {
	t.Helper()
	for range 10 {
		rs = rs[:0]
		first, err := net.Listen("tcp", "127.0.0.2:0")
		if err != nil {
			t.Fatal(err)
		}
		_, port, _ = net.SplitHostPort(first.Addr().String())
		lns := []net.Listener{first}
		for i := 1; i < n; i++ {
			ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.%d:%s", 2+i, port))
			if err != nil {
				break
			}
			lns = append(lns, ln)
		}
		if len(lns) < n {
			for _, ln := range lns {
				ln.Close()
			}
			continue
		}
		for _, ln := range lns {
			r := &replicaServer{hosts: map[string]int{}}
			r.Server = httptest.NewUnstartedServer(r.handler())
			r.Listener = ln
			r.Start()
			t.Cleanup(r.Close)
			rs = append(rs, r)
		}
		return rs, port
	}
	t.Fatalf("found no port free on %d loopback addresses", n)
	return nil, ""
}

// dynamicHandler adapts a Caddyfile mirror whose target's replicas come
// from the dynamic source, and provisions it.
func dynamicHandler(t *testing.T, dynamic string) *Handler {
	t.Helper()
	out, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(
		":8080 {\n\tmirror {\n\t\tto {\n\t\t\tlb_policy round_robin\n\t\t\t"+dynamic+"\n\t\t}\n\t}\n\trespond ok\n}\n"), nil)
	if err != nil {
		t.Fatalf("adapt: %v", err)
	}
	return provisionHandler(t, mirrorHandlerJSON(t, out))
}

// awaitReplicas waits until h's target has want replicas, as its dynamic
// source is asked again every second.
func awaitReplicas(t *testing.T, h *Handler, want int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for len(h.Targets[0].pool.now()) != want {
		if time.Now().After(deadline) {
			t.Fatalf("the pool has %d replicas after 30s, want %d", len(h.Targets[0].pool.now()), want)
		}
		time.Sleep(20 * time.Millisecond) // polling a condition, not a wait for it
	}
}

// TestDynamicAReplicas: dynamic a makes every address of a name a replica;
// round robin gives each its share of the copies, every copy delivered;
// when the name loses an address the pool follows, and the remaining
// replica gets every copy.
func TestDynamicAReplicas(t *testing.T) {
	rs, port := replicasOnOnePort(t, 2)
	d := newDNSServer(t)
	d.setA("shadow.test.", "127.0.0.2", "127.0.0.3")
	h := dynamicHandler(t, fmt.Sprintf("dynamic a shadow.test %s {\n\t\t\t\tresolvers %s\n\t\t\t\trefresh 1s\n\t\t\t}", port, d.addr))
	rec := recordOutcomes(t)
	front := serveThrough(t, h, checksumPrimary)
	if got := sendSequentially(t, front.URL, rec, 100); got["mirrored"] != 100 {
		t.Fatalf("outcomes %v, want 100 mirrored", got)
	}
	if a, b := rs[0].count(), rs[1].count(); a != 50 || b != 50 {
		t.Errorf("the replicas got %d and %d copies, want 50 and 50", a, b)
	}

	d.setA("shadow.test.", "127.0.0.3")
	awaitReplicas(t, h, 1)
	before := rs[1].count()
	if got := sendSequentially(t, front.URL, rec, 50); got["mirrored"] != 50 {
		t.Fatalf("outcomes after the name lost an address %v, want 50 mirrored", got)
	}
	if n := rs[1].count() - before; n != 50 {
		t.Errorf("the remaining replica got %d of 50 copies", n)
	}
}

// TestDynamicSRVReplicas: dynamic srv makes each record's target and port
// a replica, and a replica the records add gets copies.
func TestDynamicSRVReplicas(t *testing.T) {
	rs := []*replicaServer{newReplicaServer(t), newReplicaServer(t), newReplicaServer(t)}
	// a record's target is a name (Go's resolver refuses an address
	// there), which the target's transport resolves with the same server
	d := newDNSServer(t)
	for i := range rs {
		d.setA(fmt.Sprintf("r%d.shadow.test.", i), "127.0.0.1")
	}
	addr := func(i int) string {
		return fmt.Sprintf("r%d.shadow.test:%s", i, rs[i].URL[strings.LastIndex(rs[i].URL, ":")+1:])
	}
	d.setSRV("_http._tcp.shadow.test.", addr(0), addr(1))
	h := dynamicHandler(t, fmt.Sprintf("dynamic srv {\n\t\t\t\tservice http\n\t\t\t\tproto tcp\n\t\t\t\tname shadow.test\n\t\t\t\tresolvers %s\n\t\t\t\trefresh 1s\n\t\t\t}\n\t\t\ttransport http {\n\t\t\t\tresolvers %s\n\t\t\t}", d.addr, d.addr))
	rec := recordOutcomes(t)
	front := serveThrough(t, h, checksumPrimary)
	if label := h.Targets[0].label; label != "dynamic srv _http._tcp.shadow.test" {
		t.Errorf("an unnamed dynamic target's label = %q, want its source and name", label)
	}
	if got := sendSequentially(t, front.URL, rec, 40); got["mirrored"] != 40 {
		t.Fatalf("outcomes %v, want 40 mirrored", got)
	}
	if a, b := rs[0].count(), rs[1].count(); a != 20 || b != 20 {
		t.Errorf("the replicas got %d and %d copies, want 20 and 20", a, b)
	}

	d.setSRV("_http._tcp.shadow.test.", addr(0), addr(1), addr(2))
	awaitReplicas(t, h, 3)
	if got := sendSequentially(t, front.URL, rec, 30); got["mirrored"] != 30 {
		t.Fatalf("outcomes after a record was added %v, want 30 mirrored", got)
	}
	if n := rs[2].count(); n != 10 {
		t.Errorf("the added replica got %d of 30 copies, want 10", n)
	}
}
