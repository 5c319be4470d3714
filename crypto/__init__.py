"""Koppi's end-to-end protocol core (sans-I/O).

Nothing in this package opens a socket, touches a database, reads the clock or draws randomness
on its own: callers hand in bytes, a `Clock` and an `Rng`, and get bytes and events back. It is
the reference implementation of docs/protocol.md; the browser code mirrors it and both pass the
vectors in `crypto/vectors/`.

Note the name: this top-level package is *ours*. Never install the PyPI packages `crypto`,
`pycrypto` or `pycryptodome` beside Koppi (they claim the same or a case-colliding name).
"""
