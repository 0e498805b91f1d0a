from edgefn.cli import main

raise SystemExit(main())
