#!/bin/bash
# Against an httpd guest: the hostile clients at once — a 1 MiB request
# head, a request never finished, 200 connections held idle, 30 resets
# mid-answer — while a normal client asks for / four times a second
# (/harness/bench-echo http-abuse); then `xl shutdown`.
ip=10.0.0.2
timeout 300 /harness/bench-echo http-abuse "$ip:80" 2>&1
timeout -k 5 20 xl shutdown "$NAME"
