"""Entry points above the domains: the tills' HTTP API (api), the staff command line (cli)
and the demo data generator (demo)."""
