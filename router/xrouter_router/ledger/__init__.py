"""The ledger: usage rows and their spill, the database, limits, budgets and the usage
API; what each request used and what each key may still use."""
