package simulate

import (
	"math/rand/v2"
	"net/netip"
)

// Address ranges. Background, attacks and benign patterns draw from
// disjoint ranges, so that an attack's truth key (an address or a prefix)
// never appears in other traffic; docs/simulate.md lists them.
var (
	// Background.
	bgHome4    = []byte{24, 73, 81, 86, 92, 98, 174} // home broadband, one /8 each
	bgOffice4  = []byte{12, 63}                      // office NATs
	bgCarrier  = [][2]byte{{100, 64}, {172, 56}}     // carrier-grade NAT pools, /24s in these /16s
	bgHome6    = []uint32{0x2a028108, 0x26001700, 0x200300e0}
	bgMobile6  = []uint32{0x2607fb90, 0x2a010598}
	bgPartners = []byte{52, 20}   // partner integrations in clouds
	bgNoise    = []byte{162, 167} // the internet's background scanners

	// Attacks.
	atSingle  = []byte{45, 185} // single-address attacks
	atRot4    = []byte{193}     // rotation inside a /24
	atRot6    = uint16(0x2a0e)  // rotation inside a /64: 2a0e::/16
	atBotnet  = []byte{177, 179, 186, 187, 189, 190, 201, 41, 105, 197}
	atFresh   = []byte{5} // the takeover's fresh address
	atClients = "ck_live_"

	// Benign patterns.
	bnOffice  = []byte{64}
	bnCarrier = []byte{37}
	bnLoad    = []byte{35}
	bnProbe   = []byte{34}
	bnBatch   = []byte{10}
	bnHotel   = []byte{80}
	bnHome    = []byte{82}
	bnMobile6 = uint32(0x2607fb91)
	bnHome6   = uint32(0x2a0023c0)
	bnCrawler = netip.MustParsePrefix("66.249.64.0/19")
)

// host4 returns a random host address in one of the /8s.
func host4(r *rand.Rand, blocks []byte) netip.Addr {
	return netip.AddrFrom4([4]byte{pick(r, blocks), byte(r.IntN(256)), byte(r.IntN(256)), byte(1 + r.IntN(254))})
}

// net24 returns a random /24 in one of the /8s.
func net24(r *rand.Rand, blocks []byte) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{pick(r, blocks), byte(r.IntN(256)), byte(r.IntN(256)), 0}), 24)
}

// in24 returns a random host of a /24.
func in24(r *rand.Rand, p netip.Prefix) netip.Addr {
	a := p.Addr().As4()
	a[3] = byte(1 + r.IntN(254))
	return netip.AddrFrom4(a)
}

// net64 returns a random /64 inside the /32 top32.
func net64(r *rand.Rand, top32 uint32) netip.Prefix {
	var b [16]byte
	b[0], b[1], b[2], b[3] = byte(top32>>24), byte(top32>>16), byte(top32>>8), byte(top32)
	for i := 4; i < 8; i++ {
		b[i] = byte(r.IntN(256))
	}
	return netip.PrefixFrom(netip.AddrFrom16(b), 64)
}

// in64 returns a random address of a /64, as privacy extensions (RFC
// 8981) pick temporary addresses.
func in64(r *rand.Rand, p netip.Prefix) netip.Addr {
	b := p.Addr().As16()
	iid := r.Uint64() | 1
	for i := range 8 {
		b[8+i] = byte(iid >> (56 - 8*i))
	}
	return netip.AddrFrom16(b)
}

// allocator hands out addresses and prefixes no other part of a scenario
// uses, so truth keys never collide.
type allocator struct {
	r     *rand.Rand
	addrs map[netip.Addr]bool
	nets  map[netip.Prefix]bool
}

func newAllocator(r *rand.Rand) *allocator {
	return &allocator{r: r, addrs: map[netip.Addr]bool{}, nets: map[netip.Prefix]bool{}}
}

// addr returns a fresh address drawn by draw, in a /24 (or /64) of its
// own, so that keys by address and by prefix both stay distinct. When draw
// keeps hitting used networks (a small operator list), it settles for an
// unused address.
func (a *allocator) addr(draw func(*rand.Rand) netip.Addr) netip.Addr {
	for tries := 0; ; tries++ {
		ip := draw(a.r)
		if !a.addrs[ip] && (!a.nets[prefixOf(ip)] || tries > 1000) {
			a.addrs[ip] = true
			a.nets[prefixOf(ip)] = true
			return ip
		}
	}
}

// host returns a fresh host address in one of the /8s.
func (a *allocator) host(blocks []byte) netip.Addr {
	return a.addr(func(r *rand.Rand) netip.Addr { return host4(r, blocks) })
}

// prefix returns a fresh network drawn by draw.
func (a *allocator) prefix(draw func(*rand.Rand) netip.Prefix) netip.Prefix {
	for {
		p := draw(a.r)
		if !a.nets[p] {
			a.nets[p] = true
			return p
		}
	}
}

// prefixOf masks an address as Vigil's source_prefix does: /24 for IPv4,
// /64 for IPv6.
func prefixOf(ip netip.Addr) netip.Prefix {
	bits := 64
	if ip.Is4() {
		bits = 24
	}
	p, _ := ip.Prefix(bits)
	return p
}
