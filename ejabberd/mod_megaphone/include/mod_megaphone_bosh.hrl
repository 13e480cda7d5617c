%% SPDX-License-Identifier: GPL-2.0-or-later
%% ejabberd_bosh's request and answer record, field for field as in its
%% 23.01, 24.12 and 26.07 sources (a BOSH session process takes and gives
%% these; see mod_megaphone_bosh).
-record(body, {http_reason = <<"">> :: binary(),
               attrs = [] :: [{any(), any()}],
               els = [] :: [term()],
               size = 0 :: non_neg_integer()}).
