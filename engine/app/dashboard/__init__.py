"""`simsignal dashboard`: a read-only web page of the live signals, fed from Redis."""
