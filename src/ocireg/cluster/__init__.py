"""Scale-out cluster: one owner member per repository (SipHash of the name), a signed hop
between members, and a streaming proxy to the owner. Everything here is middleware: it imports
no handler, and with fewer than two members none of it is installed."""
