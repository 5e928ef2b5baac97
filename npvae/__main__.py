"""``python -m npvae``: the same as the ``npvae`` command."""
from .app.cli import main

raise SystemExit(main())
