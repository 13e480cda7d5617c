-- SPDX-License-Identifier: Apache-2.0
-- wrk script: POST one small BOSH body (what a long poll looks like) on keep-alive connections.
wrk.method = "POST"
wrk.body = "<body rid='4242' sid='bench' xmlns='http://jabber.org/protocol/httpbind'/>"
wrk.headers["Content-Type"] = "text/xml; charset=utf-8"
