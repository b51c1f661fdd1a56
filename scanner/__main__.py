"""`python -m scanner` does what the `scanner` console script does."""

from scanner.entry import main

raise SystemExit(main())
