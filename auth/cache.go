package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"sync"
	"time"
)

// maxCached bounds the success cache.
const maxCached = 10_000

// successCache remembers recent successful password checks so that a client
// that opens many connections does not cost a bcrypt comparison or an LDAP
// bind each time.
//
// It never holds a password nor anything that would let one be recovered
// faster than by asking the backend: the key is HMAC-SHA256 under a random
// key that exists only in this process's memory, over the user name and the
// password. A different password gives a different key and misses.
type successCache struct {
	ttl  time.Duration
	keys *credKeyer

	mu sync.Mutex
	m  map[[sha256.Size]byte]cacheEntry
}

// credKeyer derives the key under which a user name and password are
// remembered (the success cache) or shared (the flight of concurrent
// checks): HMAC-SHA256 under a random key that exists only in this
// process's memory.
type credKeyer struct {
	mu  sync.Mutex
	mac hash.Hash // keyed HMAC, reset before each use; guarded by mu
}

type cacheEntry struct {
	id  Identity
	exp time.Time
}

func newSuccessCache(ttl time.Duration) *successCache {
	return newSuccessCacheKeyed(ttl, newCredKeyer())
}

func newSuccessCacheKeyed(ttl time.Duration, k *credKeyer) *successCache {
	return &successCache{ttl: ttl, keys: k, m: make(map[[sha256.Size]byte]cacheEntry)}
}

func newCredKeyer() *credKeyer {
	var k [32]byte
	if _, err := rand.Read(k[:]); err != nil {
		panic("auth: no randomness for the cache key: " + err.Error())
	}
	return &credKeyer{mac: hmac.New(sha256.New, k[:])}
}

// key computes the entry key. Lengths are prefixed so that ("ab","c") and
// ("a","bc") differ.
func (c *credKeyer) key(user, password string) [sha256.Size]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	var n [8]byte
	c.mac.Reset()
	binary.BigEndian.PutUint64(n[:], uint64(len(user)))
	c.mac.Write(n[:])
	c.mac.Write([]byte(user))
	binary.BigEndian.PutUint64(n[:], uint64(len(password)))
	c.mac.Write(n[:])
	c.mac.Write([]byte(password))
	var k [sha256.Size]byte
	c.mac.Sum(k[:0])
	return k
}

// get returns a copy of the cached identity, or nil.
func (c *successCache) get(user, password string, now time.Time) *Identity {
	if c == nil {
		return nil
	}
	k := c.keys.key(user, password)
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	if !ok {
		return nil
	}
	if !now.Before(e.exp) {
		delete(c.m, k)
		return nil
	}
	return cloneIdentity(&e.id)
}

// put caches id for user and password until now+ttl.
func (c *successCache) put(user, password string, id *Identity, now time.Time) {
	if c == nil {
		return
	}
	k := c.keys.key(user, password)
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[k]; !ok && len(c.m) >= maxCached {
		for k, e := range c.m {
			if !now.Before(e.exp) {
				delete(c.m, k)
			}
		}
		for k := range c.m {
			if len(c.m) <= maxCached*3/4 {
				break
			}
			delete(c.m, k)
		}
	}
	c.m[k] = cacheEntry{id: *cloneIdentity(id), exp: now.Add(c.ttl)}
}

func cloneIdentity(id *Identity) *Identity {
	c := *id
	c.Addresses = append([]string(nil), id.Addresses...)
	return &c
}
