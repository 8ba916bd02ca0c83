-- Position (finding 2): mean JS and share of the top-5%-JS tokens in 10 relative-position bins.
WITH cut AS (
    SELECT checkpoint, policy, quantile_disc(js, 0.95) AS js_top5pct_cut
    FROM token_shifts GROUP BY ALL
), binned AS (
    SELECT s.checkpoint, s.policy, least(floor(s.rel_position * 10), 9)::INTEGER AS bin, s.js,
           s.js >= cut.js_top5pct_cut AS is_top
    FROM token_shifts s JOIN cut USING (checkpoint, policy)
)
SELECT checkpoint, policy, bin,
       bin / 10.0 AS rel_position_from, (bin + 1) / 10.0 AS rel_position_to,
       count(*) AS n_tokens, avg(js) AS mean_js,
       sum(is_top::INTEGER) / sum(sum(is_top::INTEGER)) OVER (PARTITION BY checkpoint, policy) AS share_of_top5pct
FROM binned
GROUP BY checkpoint, policy, bin
ORDER BY checkpoint, policy, bin;
