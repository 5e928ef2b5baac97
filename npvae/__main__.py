"""``python -m npvae``: the same as the ``npvae`` command."""
from .cli import main

raise SystemExit(main())
