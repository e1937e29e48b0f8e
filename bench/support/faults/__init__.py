"""The parts of bench/faults.py: the processes it runs (procs), its data (dataset), the load
it applies (load) and the figures it draws from them (report). In a folder of its own, so that
`make bench`, which runs every bench/*.py, does not run them."""
