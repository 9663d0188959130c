from visio.cli import main

raise SystemExit(main())
