# Copyright: sipwave developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Number porting between operators, on both sides of it.

regime     the layout of a migration code (data: a regime file), validating and issuing codes
secret     the secret code's salted slow hash, the only form in which it is kept or sent
states     the port request's states and the only transitions between them
exchange   the record files the two operators exchange (requests out, answers back)
recipient  port requests of customers coming here: phases 1 to 3, numbers following the port
donor      codes for customers leaving, and the answers to the requests other operators send
cutover    the point of no return: the conditions, and the accounts past it

Everything is kept in the proxy database (kamailio_db.schema), next to the number inventory
the port changes, and written in one transaction per step with one event row per transition.
A secret code never reaches a message, a result or a file in clear.
"""
