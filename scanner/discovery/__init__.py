"""Proxy discovery as Windows does it: static WinHTTP settings, PAC scripts and WPAD.

Parsers and decisions are pure (`winhttp`, `registry`, `pacresult`, `pachelpers`,
`decision`); I/O sits at the edges (`pac` runs scripts in a sandboxed child,
`wpad` asks DNS and fetches `wpad.dat`, `sources` ties them to the CLI).
"""
