# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The migration wave engine: a wave applied to the Kamailio database.

model        the vocabulary: states, inputs, typed rows, plans, results, errors
tables       the engine's tables (DDL), locking, and reading the current rows (State)
plan         what a wave run wants each account to look like (AccountPlan per account)
transaction  turning plans into SQL and applying them in one transaction (runs, rollbacks)
run          a wave run: plan, apply, reconcile; refunds
reconcile    checking the database against the input after a run
rollback     returning a wave's accounts to the rows of its snapshot
consent      recording the customers' decisions (migrate or close)

Everything a run changes (subscribers, aliases, per-account state, numbers, audit rows, the
wave's snapshot) is written in one transaction, so a run killed at any point leaves the
database as it was and the next run starts from there. Inputs carry HA1 hashes only; what
the engine returns or raises (views, audit rows, diffs, messages) never holds a hash.
"""
