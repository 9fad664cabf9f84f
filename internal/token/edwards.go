package token

import "math/big"

// Ed25519 public key validation for key sets: crypto/ed25519 accepts any 32
// bytes as a public key and simply fails to verify with one that is not a
// point, but a key of small order (the identity, for example) lets anyone forge
// signatures that verify under it. Key sets are loaded rarely, so plain
// math/big arithmetic is enough.

var (
	// edP is the field prime 2^255 - 19.
	edP = new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 255), big.NewInt(19))
	// edD is the curve constant d = -121665/121666 mod p.
	edD = func() *big.Int {
		d := new(big.Int).ModInverse(big.NewInt(121666), edP)
		d.Mul(d, big.NewInt(-121665))
		return d.Mod(d, edP)
	}()
)

// ed25519PointValid reports whether pub (32 bytes) is the canonical encoding
// of a point of edwards25519 whose order is not a divisor of 8.
func ed25519PointValid(pub []byte) bool {
	if len(pub) != 32 {
		return false
	}
	var be [32]byte
	for i := range 32 {
		be[i] = pub[31-i]
	}
	sign := uint(be[0] >> 7)
	be[0] &= 0x7f
	y := new(big.Int).SetBytes(be[:])
	if y.Cmp(edP) >= 0 {
		return false // non-canonical y
	}
	// x² = (y² - 1) / (d·y² + 1)
	y2 := new(big.Int).Mul(y, y)
	y2.Mod(y2, edP)
	u := new(big.Int).Sub(y2, big.NewInt(1))
	v := new(big.Int).Mul(edD, y2)
	v.Add(v, big.NewInt(1))
	v.ModInverse(v, edP)
	x2 := u.Mul(u, v)
	x2.Mod(x2, edP)
	x := new(big.Int)
	if x2.Sign() == 0 {
		if sign == 1 {
			return false // "negative zero"
		}
	} else {
		if x.ModSqrt(x2, edP) == nil {
			return false // not on the curve
		}
		if x.Bit(0) != sign {
			x.Sub(edP, x)
		}
	}
	// Small order: [8]P is the identity (0, 1).
	for range 3 {
		x, y = edDouble(x, y)
	}
	return x.Sign() != 0 || y.Cmp(big.NewInt(1)) != 0
}

// edDouble returns 2·(x, y) with the complete twisted Edwards addition law
// (a = -1): x3 = 2xy / (1 + d·x²y²), y3 = (y² + x²) / (1 - d·x²y²).
func edDouble(x, y *big.Int) (*big.Int, *big.Int) {
	xy := new(big.Int).Mul(x, y)
	xy.Mod(xy, edP)
	t := new(big.Int).Mul(xy, xy)
	t.Mul(t, edD)
	t.Mod(t, edP)

	den := new(big.Int).Add(big.NewInt(1), t)
	den.ModInverse(den, edP)
	x3 := new(big.Int).Lsh(xy, 1)
	x3.Mul(x3, den)
	x3.Mod(x3, edP)

	den.Sub(big.NewInt(1), t)
	den.Mod(den, edP)
	den.ModInverse(den, edP)
	y3 := new(big.Int).Mul(y, y)
	y3.Add(y3, new(big.Int).Mul(x, x))
	y3.Mul(y3, den)
	y3.Mod(y3, edP)
	return x3, y3
}
