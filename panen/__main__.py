from panen.cli import main

raise SystemExit(main())
