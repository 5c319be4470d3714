"""`python -m server` is the `koppi` command."""

from server.cli import main

raise SystemExit(main())
