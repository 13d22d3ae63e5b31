package webhook

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Signature headers: the current Ed25519 one and the legacy RSA one.
const (
	HeaderSignature       = "X-GHL-Signature"
	HeaderLegacySignature = "X-WH-Signature"
)

// DefaultEd25519Key is the vendor's published webhook key (SPKI, base64;
// api.md). DefaultRSAKey is the vendor's legacy RSA key (PEM).
const (
	DefaultEd25519Key = "MCowBQYDK2VwAyEAi2HR1srL4o18O8BRa7gVJY7G7bupbN3H9AwJrHCDiOg="
	DefaultRSAKey     = `-----BEGIN PUBLIC KEY-----
MIICIjANBgkqhkiG9w0BAQEFAAOCAg8AMIICCgKCAgEAokvo/r9tVgcfZ5DysOSC
Frm602qYV0MaAiNnX9O8KxMbiyRKWeL9JpCpVpt4XHIcBOK4u3cLSqJGOLaPuXw6
dO0t6Q/ZVdAV5Phz+ZtzPL16iCGeK9po6D6JHBpbi989mmzMryUnQJezlYJ3DVfB
csedpinheNnyYeFXolrJvcsjDtfAeRx5ByHQmTnSdFUzuAnC9/GepgLT9SM4nCpv
uxmZMxrJt5Rw+VUaQ9B8JSvbMPpez4peKaJPZHBbU3OdeCVx5klVXXZQGNHOs8gF
3kvoV5rTnXV0IknLBXlcKKAQLZcY/Q9rG6Ifi9c+5vqlvHPCUJFT5XUGG5RKgOKU
J062fRtN+rLYZUV+BjafxQauvC8wSWeYja63VSUruvmNj8xkx2zE/Juc+yjLjTXp
IocmaiFeAO6fUtNjDeFVkhf5LNb59vECyrHD2SQIrhgXpO4Q3dVNA5rw576PwTzN
h/AMfHKIjE4xQA1SZuYJmNnmVZLIZBlQAF9Ntd03rfadZ+yDiOXCCs9FkHibELhC
HULgCsnuDJHcrGNd5/Ddm5hxGQ0ASitgHeMZ0kcIOwKDOzOU53lDza6/Y09T7sYJ
PQe7z0cvj7aE4B+Ax1ZoZGPzpJlZtGXCsu9aTEGEnKzmsFqwcSsnw3JB31IGKAyk
T1hhTiaCeIY/OwwwNUY2yvcCAwEAAQ==
-----END PUBLIC KEY-----`
)

// ErrSignature: the request carries no valid signature.
var ErrSignature = errors.New("webhook: bad or missing signature")

// Keys verify webhook signatures. A request with X-GHL-Signature is
// checked against Ed25519 only; one with only X-WH-Signature against RSA.
type Keys struct {
	Ed25519 []ed25519.PublicKey
	RSA     []*rsa.PublicKey
}

// DefaultKeys are the vendor's published keys.
func DefaultKeys() Keys {
	k, err := ParseKeys([]string{DefaultEd25519Key, DefaultRSAKey})
	if err != nil {
		panic(err)
	}
	return k
}

// ParseKeys reads public keys, each PEM or bare base64 of a SPKI (DER)
// public key, Ed25519 or RSA.
func ParseKeys(keys []string) (Keys, error) {
	var out Keys
	for i, s := range keys {
		der, err := keyDER(s)
		if err != nil {
			return out, fmt.Errorf("webhook key %d: %w", i+1, err)
		}
		pub, err := x509.ParsePKIXPublicKey(der)
		if err != nil {
			return out, fmt.Errorf("webhook key %d: %w", i+1, err)
		}
		switch k := pub.(type) {
		case ed25519.PublicKey:
			out.Ed25519 = append(out.Ed25519, k)
		case *rsa.PublicKey:
			out.RSA = append(out.RSA, k)
		default:
			return out, fmt.Errorf("webhook key %d: unsupported type %T", i+1, pub)
		}
	}
	return out, nil
}

func keyDER(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "-----BEGIN") {
		b, _ := pem.Decode([]byte(s))
		if b == nil {
			return nil, errors.New("bad PEM")
		}
		return b.Bytes, nil
	}
	return base64.StdEncoding.DecodeString(s)
}

// Verify checks the signature headers of a raw body.
func (k Keys) Verify(h http.Header, body []byte) error {
	if s := h.Get(HeaderSignature); s != "" {
		sig, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
		if err != nil || len(sig) != ed25519.SignatureSize {
			return ErrSignature
		}
		for _, pk := range k.Ed25519 {
			if ed25519.Verify(pk, body, sig) {
				return nil
			}
		}
		return ErrSignature
	}
	if s := h.Get(HeaderLegacySignature); s != "" {
		sig, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
		if err != nil {
			return ErrSignature
		}
		sum := sha256.Sum256(body)
		for _, pk := range k.RSA {
			if rsa.VerifyPKCS1v15(pk, crypto.SHA256, sum[:], sig) == nil {
				return nil
			}
		}
	}
	return ErrSignature
}
