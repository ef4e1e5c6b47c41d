package simulate

import (
	"math/rand/v2"
	"net/netip"
	"strconv"
)

// netKind is where a user connects from.
type netKind uint8

const (
	netHome4   netKind = iota // a home broadband IPv4 address, sometimes shared by a household
	netOffice                 // an office NAT: tens to hundreds of colleagues on one address
	netCarrier                // a carrier-grade NAT pool: thousands of subscribers on a /24
	netHome6                  // an IPv6 household: a /64, privacy addresses rotating inside it
	netMobile                 // a phone on mobile data: a new address almost every session
)

// device is what a user's client is.
type device uint8

const (
	devBrowser device = iota
	devIOS
	devAndroid
	devCLI
)

// user is one member of the simulated population.
type user struct {
	name   string
	kind   netKind
	home   netip.Addr   // home4 and office: the address
	home6  netip.Prefix // home6: the household's /64
	pool   []netip.Addr // carrier: the pool's addresses
	dev    device
	ua     string
	client string
	staff  bool // may call /v1/admin/...
}

// population is the users of the simulated API.
type population struct {
	users    []user
	classes  [3][]int32 // user indexes by activity: heavy, medium, light
	reserved []bool     // users scripted by an attack or benign pattern, not by the background
	carrier  [][]netip.Addr
}

// activity weights of the heavy, medium and light classes and their shares.
var (
	classWeight = [3]float64{8, 3, 1}
	classShare  = [3]float64{0.1, 0.3, 0.6}
)

// newPopulation draws n users.
func newPopulation(r *rand.Rand, n int) *population {
	p := &population{users: make([]user, n), reserved: make([]bool, n)}
	p.carrier = carrierPools(r, 3+n/20_000)
	names := newNamer(r)
	var office netip.Addr
	officeLeft := 0
	for i := range p.users {
		u := &p.users[i]
		u.name = names.next()
		u.kind = drawKind(r)
		switch u.kind {
		case netHome4:
			u.home = host4(r, bgHome4)
			if i > 0 && p.users[i-1].kind == netHome4 && chance(r, 0.2) {
				u.home = p.users[i-1].home // a household
			}
		case netOffice:
			if officeLeft == 0 {
				office, officeLeft = host4(r, bgOffice4), int(min(400, max(5, logNormal(r, 40, 1))))
			}
			u.home, officeLeft = office, officeLeft-1
			u.staff = chance(r, 0.01)
		case netCarrier:
			u.pool = pick(r, p.carrier)
		case netHome6:
			u.home6 = net64(r, pick(r, bgHome6))
		}
		u.dev = drawDevice(r, u.kind)
		u.ua, u.client = agentOf(r, u.dev)
		c := classOf(r)
		p.classes[c] = append(p.classes[c], int32(i))
	}
	return p
}

func drawKind(r *rand.Rand) netKind {
	switch u := r.Float64(); {
	case u < 0.40:
		return netHome4
	case u < 0.55:
		return netOffice
	case u < 0.70:
		return netCarrier
	case u < 0.85:
		return netHome6
	default:
		return netMobile
	}
}

func drawDevice(r *rand.Rand, k netKind) device {
	u := r.Float64()
	switch k {
	case netOffice:
		return pickDevice(u, 0.9, 0.93, 0.96)
	case netMobile, netCarrier:
		return pickDevice(u, 0.15, 0.6, 1)
	}
	return pickDevice(u, 0.6, 0.8, 0.95)
}

// pickDevice maps u to browser below b, iOS below i, Android below a, CLI
// above.
func pickDevice(u, b, i, a float64) device {
	switch {
	case u < b:
		return devBrowser
	case u < i:
		return devIOS
	case u < a:
		return devAndroid
	}
	return devCLI
}

func classOf(r *rand.Rand) int {
	u := r.Float64()
	for c, s := range classShare {
		if u < s {
			return c
		}
		u -= s
	}
	return 2
}

// carrierPools draws n carrier-grade NAT pools of one /24 each.
func carrierPools(r *rand.Rand, n int) [][]netip.Addr {
	pools := make([][]netip.Addr, n)
	for i := range pools {
		base := pick(r, bgCarrier)
		c := byte(r.IntN(256))
		for d := 1; d < 255; d++ {
			pools[i] = append(pools[i], netip.AddrFrom4([4]byte{base[0], base[1], c, byte(d)}))
		}
	}
	return pools
}

// pick draws a user for a background session: heavy users more often,
// never a reserved one.
func (p *population) pick(r *rand.Rand) int {
	for {
		u, c := r.Float64()*(classWeight[0]*classShare[0]+classWeight[1]*classShare[1]+classWeight[2]*classShare[2]), 0
		for c < 2 && u >= classWeight[c]*classShare[c] {
			u -= classWeight[c] * classShare[c]
			c++
		}
		if len(p.classes[c]) == 0 {
			continue
		}
		i := int(pick(r, p.classes[c]))
		if !p.reserved[i] {
			return i
		}
	}
}

// reserve draws n distinct users of kind k (any kind when k is
// anyKind) for a scripted pattern and keeps them out of the background.
// It returns fewer when the population has too few left.
func (p *population) reserve(r *rand.Rand, n int, k netKind, anyKind bool) []int {
	var out []int
	for tries := 0; len(out) < n && tries < 20*n+1000; tries++ {
		i := r.IntN(len(p.users))
		if p.reserved[i] || (!anyKind && p.users[i].kind != k) {
			continue
		}
		p.reserved[i] = true
		out = append(out, i)
	}
	return out
}

// validUsers walks distinct unreserved users in a random order: the
// accounts an attacker has enumerated or found in a leak.
type validUsers struct {
	p           *population
	next, step  int
	visited, at int
}

func (p *population) walk(r *rand.Rand) *validUsers {
	n := len(p.users)
	step := 1 + r.IntN(n)
	for gcd(step, n) != 1 {
		step++
	}
	return &validUsers{p: p, next: r.IntN(n), step: step}
}

// user returns the next user's name, or "" when all were visited.
func (w *validUsers) user() string {
	n := len(w.p.users)
	for w.visited < n {
		i := w.next
		w.next = (w.next + w.step) % n
		w.visited++
		if !w.p.reserved[i] {
			return w.p.users[i].name
		}
	}
	return ""
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// mobileAddr draws the address of a phone on mobile data: a carrier-grade
// NAT address or a /64 of its own from a mobile carrier.
func (p *population) mobileAddr(r *rand.Rand) netip.Addr {
	if chance(r, 0.5) {
		return pick(r, pick(r, p.carrier))
	}
	return in64(r, net64(r, pick(r, bgMobile6)))
}

// sessionAddr draws the address u connects from for one session.
func (p *population) sessionAddr(r *rand.Rand, u *user) netip.Addr {
	switch u.kind {
	case netHome4, netOffice:
		if u.dev == devIOS || u.dev == devAndroid || chance(r, 0.05) {
			if chance(r, 0.3) {
				return p.mobileAddr(r)
			}
		}
		return u.home
	case netCarrier:
		return pick(r, u.pool)
	case netHome6:
		if chance(r, 0.1) {
			return p.mobileAddr(r)
		}
		return in64(r, u.home6)
	}
	return p.mobileAddr(r)
}

// moves reports whether u's address may change during a session (a phone
// switching between Wi-Fi and mobile data, a privacy address rotating).
func (u *user) moves() bool { return u.kind == netMobile || u.kind == netHome6 }

var firstNames = []string{"james", "mary", "robert", "patricia", "john", "jennifer", "michael", "linda",
	"david", "elizabeth", "william", "barbara", "richard", "susan", "joseph", "jessica", "thomas", "sarah",
	"carlos", "maria", "ahmed", "fatima", "wei", "li", "hiroshi", "yuki", "olga", "ivan", "priya", "raj",
	"lucas", "emma", "noah", "olivia", "liam", "ava", "mateo", "sofia", "leon", "mia", "hugo", "lea",
	"amara", "kwame", "chen", "mei", "diego", "lucia", "omar", "aisha", "sven", "ingrid", "pierre", "camille"}

var lastNames = []string{"smith", "johnson", "williams", "brown", "jones", "garcia", "miller", "davis",
	"rodriguez", "martinez", "hernandez", "lopez", "gonzalez", "wilson", "anderson", "thomas", "taylor",
	"moore", "jackson", "martin", "lee", "perez", "thompson", "white", "harris", "sanchez", "clark",
	"lewis", "robinson", "walker", "young", "allen", "king", "wright", "scott", "torres", "nguyen", "hill",
	"flores", "green", "adams", "nelson", "baker", "hall", "rivera", "campbell", "mitchell", "carter",
	"mueller", "schmidt", "kowalski", "novak", "rossi", "bianchi", "dubois", "silva", "santos", "kim", "park",
	"tanaka", "sato", "singh", "patel", "khan", "ali", "okafor", "mensah", "larsen", "jensen", "berg"}

var mailDomains = []string{"gmail.com", "outlook.com", "yahoo.com", "icloud.com", "proton.me", "gmx.de",
	"hotmail.com", "web.de", "orange.fr", "acme-corp.com", "globex.io", "initech.com", "umbrella.co",
	"hooli.com", "vandelay.com", "stark-industries.com"}

// namer draws unique, realistic user names (e-mail addresses).
type namer struct {
	r    *rand.Rand
	seen map[string]bool
}

func newNamer(r *rand.Rand) *namer { return &namer{r: r, seen: map[string]bool{}} }

func (n *namer) next() string {
	f, l := pick(n.r, firstNames), pick(n.r, lastNames)
	var local string
	switch n.r.IntN(4) {
	case 0:
		local = f + "." + l
	case 1:
		local = f[:1] + l
	case 2:
		local = f + l + strconv.Itoa(n.r.IntN(100))
	default:
		local = f + "_" + l
	}
	domain := pick(n.r, mailDomains)
	name := local + "@" + domain
	for k := 2; n.seen[name]; k++ {
		name = local + "." + strconv.Itoa(k) + "@" + domain
	}
	n.seen[name] = true
	return name
}

// names returns the set of the population's user names.
func (p *population) names() map[string]bool {
	out := make(map[string]bool, len(p.users))
	for _, u := range p.users {
		out[u.name] = true
	}
	return out
}
