#!/bin/sh
# Lab image: packages must not start their daemons on install (with host networking a
# default configuration would bind the host's addresses); the roles start them configured.
exit 101
