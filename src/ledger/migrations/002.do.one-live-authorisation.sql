-- One live authorisation per user and sale (SPEC: one per ticket, and a user has one ticket
-- per sale). Two concurrent pre-auth requests cannot both hold the card.
CREATE UNIQUE INDEX payments_one_live_authorisation ON payments (sale_id, user_id)
  WHERE kind = 'authorization' AND status IN ('pending', 'authorized');
