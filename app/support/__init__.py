"""What every layer may use, below registration and the token endpoints alike: the one clock,
the one safe outbound fetcher, bounded JSON parsing of untrusted input, the one check of a
JWT's registered claims (``jwt_claims``), the protocol's names (``protocol``), values echoed in
an error description (``echo``), hashing of generated secrets, running synchronous code inline
on the event loop (``inline``), development secrets, and the helpers the commands share."""
