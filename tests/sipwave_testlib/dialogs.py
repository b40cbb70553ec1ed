"""What the proxy's Record-Route looks like from outside (roles/kamailio dialogs.py)."""

# The dialog token a Record-Route of the proxy carries: when the branch left (hex seconds)
# and the MACs of the dialog's two ends (96 bits each, hex).
DIALOG_TOKEN = r"swt=[0-9a-f]{1,12}\.[0-9a-f]{24}\.[0-9a-f]{24}"
