# Draws the isolation benchmark's p99 latencies as grouped bars (SVG).
#   gnuplot -e "data='isolation.dat'; out='docs/isolation-p99.svg'" scripts/bench/isolation_chart.gp
# isolation.dat: one line per target: name p99_alone_us p99_disturbed_us
set terminal svg size 640,360 dynamic font "sans,12"
set output out
set title "4 KiB cached reads: p99 latency alone and next to a page-cache stream"
set ylabel "p99 latency (µs, log scale)"
set logscale y
set yrange [10:*]
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set key top left
set grid ytics
plot data using 2:xtic(1) title "alone" lc rgb "#4477aa", \
     '' using 3 title "disturbed" lc rgb "#cc6677"
