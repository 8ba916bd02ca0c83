-- Position (finding 2): mean JS and share of the top-5%-JS tokens (cut per checkpoint and policy) in
-- position_bins() relative-position bins (the summaries table's position_* lists).
SELECT s.checkpoint, s.policy, b.bin,
       b.bin / position_bins() AS rel_position_from, (b.bin + 1) / position_bins() AS rel_position_to,
       s.position_n_tokens[b.bin + 1] AS n_tokens, s.position_mean_js[b.bin + 1] AS mean_js,
       s.position_top5pct_share[b.bin + 1] AS share_of_top5pct
FROM summaries s CROSS JOIN range(position_bins()) b(bin)
ORDER BY s.checkpoint, s.policy, b.bin;
