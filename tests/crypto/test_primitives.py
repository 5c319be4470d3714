"""Suite 1 primitives and Koppi's strict checks (docs/protocol.md §2).

The lists of small-order Ed25519 y values and low-order X25519 u values in `crypto.primitives` are
not trusted here: they are re-derived by pure-Python curve arithmetic written in this file.
"""

from __future__ import annotations

import pytest

import crypto.primitives as prim
from crypto.clock import SeededRng
from crypto.errors import AuthFailed
from crypto.primitives import (
    KemKey,
    SigningKey,
    WeakKey,
    aead_open,
    aead_seal,
    check_ed25519_public,
    check_x25519_public,
    ed25519_verify,
    hpke_open,
    hpke_seal,
)

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = (-121665 * pow(121666, P - 2, P)) % P
A_MONT = 486662


# --- independent edwards25519 arithmetic (RFC 8032 §5.1) ------------------------------------------

Point = tuple[int, int]
IDENTITY: Point = (0, 1)


def ed_add(p1: Point, p2: Point) -> Point:
    (x1, y1), (x2, y2) = p1, p2
    t = D * x1 * x2 * y1 * y2 % P
    x3 = (x1 * y2 + x2 * y1) * pow(1 + t, P - 2, P) % P
    y3 = (y1 * y2 + x1 * x2) * pow(1 - t, P - 2, P) % P
    return x3, y3


def ed_mul(k: int, pt: Point) -> Point:
    acc, add = IDENTITY, pt
    while k:
        if k & 1:
            acc = ed_add(acc, add)
        add = ed_add(add, add)
        k >>= 1
    return acc


def ed_decode_y(y: int, sign: int) -> Point | None:
    """RFC 8032 §5.1.3 x recovery; None if y is not the y of a curve point."""
    u, v = (y * y - 1) % P, (D * y * y + 1) % P
    x = u * pow(v, 3, P) * pow(u * pow(v, 7, P), (P - 5) // 8, P) % P
    if v * x * x % P == (-u) % P:
        x = x * pow(2, (P - 1) // 4, P) % P
    if v * x * x % P != u % P:
        return None
    if x == 0 and sign:
        return None
    if x & 1 != sign:
        x = P - x
    return x, y


def torsion_points() -> list[Point]:
    """All 8 points of order dividing 8: [L] of a random point is torsion; find one of order 8."""
    for y in range(2, 100):
        pt = ed_decode_y(y, 0)
        if pt is None:
            continue
        q = ed_mul(L, pt)
        if ed_mul(4, q) != IDENTITY:  # q has order exactly 8
            pts = [ed_mul(k, q) for k in range(8)]
            assert ed_mul(8, q) == IDENTITY and len(set(pts)) == 8
            return pts
    raise AssertionError("no order-8 point found")


def encode(pt: Point) -> bytes:
    x, y = pt
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def test_small_order_y_list_is_exactly_the_y_of_the_eight_torsion_points() -> None:
    ys = {y for _, y in torsion_points()}
    assert ys == set(prim._SMALL_ORDER_Y)
    assert len(ys) == 5  # identity, order 2 share none; order 4 share y = 0; order 8 pair up


# --- independent Curve25519 u-line arithmetic (RFC 7748 §5) ---------------------------------------

Poly = list[int]  # coefficients, lowest degree first, mod P


def _trim(a: Poly) -> Poly:
    while a and a[-1] % P == 0:
        a = a[:-1]
    return [c % P for c in a]


def _mod(a: Poly, f: Poly) -> Poly:
    a = _trim(a)
    inv = pow(f[-1], P - 2, P)
    while len(a) >= len(f):
        c = a[-1] * inv % P
        shift = len(a) - len(f)
        for i, fc in enumerate(f):
            a[shift + i] = (a[shift + i] - c * fc) % P
        a = _trim(a)
    return a


def _mul(a: Poly, b: Poly, f: Poly) -> Poly:
    out = [0] * (len(a) + len(b))
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            out[i + j] += x * y
    return _mod(out, f)


def _gcd(a: Poly, b: Poly) -> Poly:
    a, b = _trim(a), _trim(b)
    while b:
        a, b = b, _mod(a, b)
    return a


def roots_in_field(f: Poly) -> int:
    """Number of distinct roots of f in F_p: deg gcd(f, u^p - u)."""
    f = _trim(f)
    acc, base, e = [1], [0, 1], P
    while e:
        if e & 1:
            acc = _mul(acc, base, f)
        base = _mul(base, base, f)
        e >>= 1
    padded = acc + [0] * (2 - len(acc))
    up_minus_u = _trim([(c - (1 if i == 1 else 0)) % P for i, c in enumerate(padded)])
    return len(_gcd(f, up_minus_u)) - 1


def _eval(f: Poly, u: int) -> int:
    return sum(c * pow(u, i, P) for i, c in enumerate(f)) % P


def double_u(u: int) -> int | None:
    """x-only doubling on v^2 = u^3 + A u^2 + u (curve or twist); None for the point at infinity."""
    den = 4 * u * (u * u + A_MONT * u + 1) % P
    if den == 0:
        return None
    return (u * u - 1) ** 2 * pow(den, P - 2, P) % P


def times_8_is_infinity(u: int) -> bool:
    for _ in range(3):
        nu = double_u(u)
        if nu is None:
            return True
        u = nu
    return False


def test_low_order_u_list_is_exactly_the_u_of_points_of_order_dividing_8() -> None:
    # [2]u = inf  <=>  u (u^2 + A u + 1) = 0, and u^2 + A u + 1 has no root in F_p: only u = 0.
    assert roots_in_field([1, A_MONT, 1]) == 0
    # [2]u = 0  <=>  (u^2 - 1)^2 = 0  <=>  u = 1 or u = -1 (these have order 4).
    # [2]u = +-1  <=>  (u^2 - 1)^2 -+ 4u(u^2 + A u + 1) = 0: the order-8 points.
    order8: set[int] = set()
    for t in (1, P - 1):
        f = [1, -4 * t, -2 - 4 * A_MONT * t, -4 * t, 1]
        n = roots_in_field(f)
        found = {u for u in prim._LOW_ORDER_U if _eval(f, u) == 0}
        assert len(found) == n  # every root of f in F_p is in our list
        order8 |= found
    assert len(order8) == 2
    derived = {0, 1, P - 1} | order8
    assert derived == set(prim._LOW_ORDER_U)
    assert all(times_8_is_infinity(u) for u in derived)
    assert not times_8_is_infinity(9)  # the base point has order L


# --- strict Ed25519 verification ------------------------------------------------------------------


class _AcceptEverything:
    """Stands in for a lax platform verifier, so that only Koppi's own checks can refuse."""

    @classmethod
    def from_public_bytes(cls, data: bytes) -> _AcceptEverything:
        return cls()

    def verify(self, signature: bytes, data: bytes) -> None:
        return None


@pytest.fixture
def lax_platform(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(prim, "Ed25519PublicKey", _AcceptEverything)


KEY = SigningKey.from_seed(bytes(range(32)))
MSG = b"koppi strict verification"
SIG = KEY.sign(MSG)
S = int.from_bytes(SIG[32:], "little")


def _with_s(s: int) -> bytes:
    return SIG[:32] + s.to_bytes(32, "little")


def test_a_valid_signature_verifies_and_a_lax_platform_changes_nothing_for_it(
    lax_platform: None,
) -> None:
    ed25519_verify(KEY.public, MSG, SIG)


@pytest.mark.parametrize(
    "s", [L, S + L, 2**253 - 1, 2**256 - 1], ids=["L", "S+L", "2^253-1", "max"]
)
def test_s_at_or_above_l_is_refused_even_by_a_lax_platform(lax_platform: None, s: int) -> None:
    with pytest.raises(AuthFailed) as err:
        ed25519_verify(KEY.public, MSG, _with_s(s))
    assert err.value.code == "koppi.auth_failed"


NON_CANONICAL_Y = [P, P + 1, P + 2, P + 9, 2**255 - 1]


@pytest.mark.parametrize("y", NON_CANONICAL_Y)
@pytest.mark.parametrize("sign", [0, 1])
def test_public_key_with_y_at_or_above_p_is_refused(lax_platform: None, y: int, sign: int) -> None:
    enc = (y | sign << 255).to_bytes(32, "little")
    with pytest.raises(AuthFailed):
        ed25519_verify(enc, MSG, SIG)
    with pytest.raises(WeakKey):
        check_ed25519_public(enc)


@pytest.mark.parametrize("y", NON_CANONICAL_Y)
@pytest.mark.parametrize("sign", [0, 1])
def test_r_with_y_at_or_above_p_is_refused(lax_platform: None, y: int, sign: int) -> None:
    r = (y | sign << 255).to_bytes(32, "little")
    with pytest.raises(AuthFailed):
        ed25519_verify(KEY.public, MSG, r + SIG[32:])


TORSION = torsion_points()
SMALL_ORDER_ENCODINGS = [encode(p) for p in TORSION] + [
    (int.from_bytes(encode(p), "little") | 1 << 255).to_bytes(32, "little")
    for p in TORSION
    if p[0] == 0  # x = 0: the sign bit is free in the encoding, the point the same
]


@pytest.mark.parametrize("enc", SMALL_ORDER_ENCODINGS, ids=lambda e: e.hex()[:8])
def test_small_order_public_key_is_refused(lax_platform: None, enc: bytes) -> None:
    with pytest.raises(AuthFailed):
        ed25519_verify(enc, MSG, SIG)
    with pytest.raises(WeakKey):
        check_ed25519_public(enc)


@pytest.mark.parametrize("enc", SMALL_ORDER_ENCODINGS, ids=lambda e: e.hex()[:8])
def test_small_order_r_is_refused(lax_platform: None, enc: bytes) -> None:
    with pytest.raises(AuthFailed):
        ed25519_verify(KEY.public, MSG, enc + SIG[32:])


def test_wrong_lengths_and_a_tampered_message_are_refused() -> None:
    for pk, sig in ((KEY.public[:31], SIG), (KEY.public, SIG[:63]), (KEY.public, SIG + b"\0")):
        with pytest.raises(AuthFailed):
            ed25519_verify(pk, MSG, sig)
    with pytest.raises(AuthFailed):
        ed25519_verify(KEY.public, MSG + b".", SIG)
    check_ed25519_public(KEY.public)  # an ordinary key is accepted


# --- X25519 ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("u", sorted(prim._LOW_ORDER_U))
@pytest.mark.parametrize("high_bit", [0, 1])
def test_low_order_u_is_refused(u: int, high_bit: int) -> None:
    enc = (u | high_bit << 255).to_bytes(32, "little")
    with pytest.raises(WeakKey) as err:
        check_x25519_public(enc)
    assert err.value.code == "koppi.weak_key"
    with pytest.raises(WeakKey):
        KemKey.from_bytes(bytes([7]) * 32).exchange(enc)


@pytest.mark.parametrize("u", [P, P + 1, P + 2, P + 18, 2**255 - 1])
def test_non_canonical_u_is_refused(u: int) -> None:
    with pytest.raises(WeakKey):
        check_x25519_public(u.to_bytes(32, "little"))


def test_wrong_length_x25519_key_is_refused() -> None:
    with pytest.raises(WeakKey):
        check_x25519_public(bytes(31))


def test_all_zero_shared_secret_is_refused_even_if_the_key_check_were_skipped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(prim, "check_x25519_public", lambda public: public)
    for u in sorted(prim._LOW_ORDER_U):
        with pytest.raises(WeakKey) as err:
            KemKey.from_bytes(bytes([7]) * 32).exchange(u.to_bytes(32, "little"))
        assert err.value.code == "koppi.weak_key"


def test_exchange_agrees_both_ways() -> None:
    rng = SeededRng("x25519")
    a, b = KemKey.generate(rng), KemKey.generate(rng)
    assert a.exchange(b.public) == b.exchange(a.public)


# --- AES-256-GCM and HPKE tampering ---------------------------------------------------------------

KEY32, NONCE = bytes(range(32)), bytes(range(12))


def test_aead_round_trip_and_every_tampering_is_auth_failed() -> None:
    ct = aead_seal(KEY32, NONCE, b"plaintext", b"header")
    assert aead_open(KEY32, NONCE, ct, b"header") == b"plaintext"
    flipped_ct = bytes([ct[0] ^ 1]) + ct[1:]
    flipped_tag = ct[:-1] + bytes([ct[-1] ^ 1])
    attempts = [
        (KEY32, NONCE, flipped_ct, b"header"),
        (KEY32, NONCE, flipped_tag, b"header"),
        (KEY32, NONCE, ct, b"header2"),
        (KEY32, bytes(12), ct, b"header"),
        (bytes(32), NONCE, ct, b"header"),
        (KEY32, NONCE, ct[:-1], b"header"),
    ]
    for args in attempts:
        with pytest.raises(AuthFailed) as err:
            aead_open(*args)
        assert err.value.code == "koppi.auth_failed"


def test_aead_refuses_wrong_key_or_nonce_sizes() -> None:
    with pytest.raises(ValueError):
        aead_seal(bytes(16), NONCE, b"", b"")
    with pytest.raises(ValueError):
        aead_open(KEY32, bytes(8), bytes(16), b"")


def test_hpke_round_trip_and_every_tampering_is_auth_failed() -> None:
    rng = SeededRng("hpke")
    recipient, other = KemKey.generate(rng), KemKey.generate(rng)
    sealed = hpke_seal(recipient.public, b"info", b"epoch secret")
    assert hpke_open(recipient, b"info", sealed) == b"epoch secret"
    bad = [
        (recipient, b"info", bytes([sealed[0] ^ 1]) + sealed[1:]),  # enc
        (recipient, b"info", sealed[:40] + bytes([sealed[40] ^ 1]) + sealed[41:]),  # ct
        (recipient, b"info", sealed[:-1] + bytes([sealed[-1] ^ 1])),  # tag
        (recipient, b"other info", sealed),
        (other, b"info", sealed),
        (recipient, b"info", sealed[:47]),  # shorter than enc + tag
    ]
    for args in bad:
        with pytest.raises(AuthFailed) as err:
            hpke_open(*args)
        assert err.value.code == "koppi.auth_failed"


def test_hpke_refuses_to_seal_to_a_low_order_key() -> None:
    with pytest.raises(WeakKey):
        hpke_seal(bytes(32), b"info", b"x")


# --- quiet secrets --------------------------------------------------------------------------------


def test_key_reprs_show_the_public_key_only() -> None:
    sk = SigningKey.from_seed(bytes(range(32)))
    kk = KemKey.from_bytes(bytes(range(32, 64)))
    for key, secret, public in (
        (sk, sk.seed_bytes(), sk.public),
        (kk, kk.private_bytes(), kk.public),
    ):
        for text in (repr(key), str(key), f"{key}", repr([key])):
            assert secret.hex() not in text
            assert secret.hex()[:8] not in text
            assert str(secret) not in text
            assert public.hex()[:16] in text


def test_keys_survive_pickle_and_copy_after_use() -> None:
    import copy
    import pickle

    sk = SigningKey.from_seed(bytes(range(32)))
    kk = KemKey.from_bytes(bytes(range(32, 64)))
    sig, pub = sk.sign(b"m"), kk.public  # loads and caches the library objects
    sk2 = pickle.loads(pickle.dumps(sk))
    kk2 = pickle.loads(pickle.dumps(kk))
    assert sk2 == sk and sk2.sign(b"m") == sig
    assert kk2 == kk and kk2.public == pub
    assert copy.deepcopy(sk).sign(b"m") == sig
