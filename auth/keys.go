package auth

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
)

// verifyKey is one session verification key and the pinned algorithms it may
// be used with. Immutable once built.
type verifyKey struct {
	kid  string
	key  any // []byte, *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey
	algs []jwa.SignatureAlgorithm
}

func (k *verifyKey) allows(alg jwa.SignatureAlgorithm) bool {
	for _, a := range k.algs {
		if a == alg {
			return true
		}
	}
	return false
}

// keySet is an immutable snapshot of session keys.
type keySet struct {
	all   []verifyKey
	byKid map[string][]verifyKey // keys that have a kid; nil for a secret or a PEM key
}

// candidates returns the keys to try for a token with the given kid. A key
// set that came from a JWKS selects by kid when the token names one; a single
// configured key is used whatever the token's kid.
func (s *keySet) candidates(kid string) []verifyKey {
	if s.byKid == nil || kid == "" {
		return s.all
	}
	return s.byKid[kid]
}

// keyFitsAlg reports whether alg can be verified with key. It is the only
// place that ties key types to algorithms, and it is never consulted to pick
// an algorithm: only to refuse a pinned one.
func keyFitsAlg(key any, alg jwa.SignatureAlgorithm) bool {
	switch k := key.(type) {
	case []byte:
		info, ok := lookupAlg(alg.String())
		return ok && info.hmac && len(k) >= info.minSecret
	case *rsa.PublicKey:
		switch alg {
		case jwa.RS256, jwa.RS384, jwa.RS512, jwa.PS256, jwa.PS384, jwa.PS512:
			return true
		}
	case *ecdsa.PublicKey:
		switch alg {
		case jwa.ES256:
			return k.Curve == elliptic.P256()
		case jwa.ES384:
			return k.Curve == elliptic.P384()
		case jwa.ES512:
			return k.Curve == elliptic.P521()
		}
	case ed25519.PublicKey:
		return alg == jwa.EdDSA
	}
	return false
}

// describeKey names a key's type for error messages.
func describeKey(key any) string {
	switch k := key.(type) {
	case *rsa.PublicKey:
		return fmt.Sprintf("an RSA-%d key", k.N.BitLen())
	case *ecdsa.PublicKey:
		return "an EC " + k.Curve.Params().Name + " key"
	case ed25519.PublicKey:
		return "an Ed25519 key"
	case []byte:
		return "a symmetric key"
	}
	return fmt.Sprintf("a %T key", key)
}

// checkPublicKey refuses key types and sizes herald does not verify with.
func checkPublicKey(key any) error {
	switch k := key.(type) {
	case *rsa.PublicKey:
		if n := k.N.BitLen(); n < MinRSABits {
			return fmt.Errorf("RSA key is %d bits; at least %d are required", n, MinRSABits)
		}
		return nil
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
			return nil
		}
		return fmt.Errorf("EC curve %s is not supported (P-256, P-384, P-521 are)", k.Curve.Params().Name)
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return fmt.Errorf("Ed25519 key is %d bytes, not %d", len(k), ed25519.PublicKeySize)
		}
		return nil
	}
	return fmt.Errorf("unsupported key type %T (RSA, EC and Ed25519 public keys are)", key)
}

// parsePublicKeyPEM parses exactly one PEM public key block.
func parsePublicKeyPEM(data []byte) (any, error) {
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block found")
	}
	if strings.Contains(block.Type, "PRIVATE KEY") {
		return nil, fmt.Errorf("the PEM block is a %s; give herald only the public key", block.Type)
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, errors.New("more than one PEM block; give one public key, or use a JWKS for several keys")
	}
	var key any
	var err error
	switch block.Type {
	case "PUBLIC KEY":
		key, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		key, err = x509.ParsePKCS1PublicKey(block.Bytes)
	default:
		return nil, fmt.Errorf("PEM block type %q is not supported (PUBLIC KEY and RSA PUBLIC KEY are)", block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", block.Type, err)
	}
	if err := checkPublicKey(key); err != nil {
		return nil, err
	}
	return key, nil
}

// staticKeySet is the key set of a shared secret or a PEM public key.
func staticKeySet(key any, pinned []jwa.SignatureAlgorithm) *keySet {
	return &keySet{all: []verifyKey{{key: key, algs: pinned}}}
}

// buildJWKSKeySet turns a JWKS into a key snapshot. A key is kept only when
// it is a public key (or the public half of a private one) usable for
// signatures, of a supported type and size, and fits at least one pinned
// algorithm; when the JWK has its own alg, that alg must be pinned and is
// the only one the key is offered with. Symmetric keys are never taken from
// a JWKS. It returns the reasons keys were skipped, for the log.
func buildJWKSKeySet(set jwk.Set, pinned []jwa.SignatureAlgorithm) (*keySet, []string, error) {
	ks := &keySet{byKid: make(map[string][]verifyKey)}
	var skipped []string
	for i := range set.Len() {
		jk, _ := set.Key(i)
		name := fmt.Sprintf("key #%d (kid %q)", i, jk.KeyID())
		vk, reason := jwksKey(jk, pinned)
		if reason != "" {
			skipped = append(skipped, name+": "+reason)
			continue
		}
		ks.all = append(ks.all, vk)
		if vk.kid != "" {
			ks.byKid[vk.kid] = append(ks.byKid[vk.kid], vk)
		}
	}
	if len(ks.all) == 0 {
		return nil, skipped, fmt.Errorf("the JWKS has no key usable with the pinned algs %v (%d keys, skipped: %s)",
			pinned, set.Len(), strings.Join(skipped, "; "))
	}
	return ks, skipped, nil
}

// jwksKey converts one JWK, or says why it is skipped.
func jwksKey(jk jwk.Key, pinned []jwa.SignatureAlgorithm) (verifyKey, string) {
	if jk.KeyType() == jwa.OctetSeq {
		return verifyKey{}, "symmetric keys are not taken from a JWKS"
	}
	if use := jk.KeyUsage(); use != "" && use != string(jwk.ForSignature) {
		return verifyKey{}, fmt.Sprintf("use is %q, not sig", use)
	}
	if ops := jk.KeyOps(); len(ops) > 0 {
		verify := false
		for _, op := range ops {
			verify = verify || op == jwk.KeyOpVerify
		}
		if !verify {
			return verifyKey{}, "key_ops does not include verify"
		}
	}
	pub, err := jk.PublicKey()
	if err != nil {
		return verifyKey{}, "no public key: " + err.Error()
	}
	var raw any
	if err := pub.Raw(&raw); err != nil {
		return verifyKey{}, "unusable key material: " + err.Error()
	}
	if err := checkPublicKey(raw); err != nil {
		return verifyKey{}, err.Error()
	}
	vk := verifyKey{kid: jk.KeyID(), key: raw}
	jwkAlg := jk.Algorithm().String()
	for _, alg := range pinned {
		if jwkAlg != "" && jwkAlg != alg.String() {
			continue
		}
		if keyFitsAlg(raw, alg) {
			vk.algs = append(vk.algs, alg)
		}
	}
	if len(vk.algs) == 0 {
		if jwkAlg != "" {
			return verifyKey{}, fmt.Sprintf("its alg %q is not pinned or does not fit %s", jwkAlg, describeKey(raw))
		}
		return verifyKey{}, fmt.Sprintf("%s fits none of the pinned algs", describeKey(raw))
	}
	return vk, ""
}
