"""External issuers whose keys Ostiary believes (software publishers, workload issuers), and
the public key sets that clients and issuers register (``keysets``)."""
