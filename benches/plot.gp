# benches/plot.gp: draws results.png from the medians harness.py writes to results/tmp/plot.dat.
# Called as: gnuplot -e "datafile='…'; outfile='…'; nprof=3; profiles='c64 c512 p16'; idleconns='10000'" plot.gp
# Columns: server, then per profile (req/s, CPU µs/req), then idle RSS KiB, peak RSS KiB,
# bytes per idle connection, idle RssAnon KiB.
set terminal pngcairo size 1500,1000 font "sans,10"
set output outfile
set multiplot layout 2,2 title "lameduck vs framework servers (one core each; medians over rounds)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set key top right autotitle columnhead
set grid ytics
set xtics nomirror rotate by -20

set title "throughput (req/s, log scale, higher is better)"
set logscale y
set format y "%.0s%c"
plot for [i=0:nprof-1] datafile using (column(2+2*i)):xtic(1) title word(profiles, i+1)
unset logscale y

set title "server CPU per request (µs, lower is better)"
set format y "%g"
plot for [i=0:nprof-1] datafile using (column(3+2*i)):xtic(1) title word(profiles, i+1)

set title "resident memory (KiB, log scale, lower is better)"
set logscale y
plot datafile using (column(2+2*nprof)):xtic(1) title "idle RSS", \
     ''       using (column(5+2*nprof)) title "idle RssAnon", \
     ''       using (column(3+2*nprof)) title "peak RSS after load"
unset logscale y

set title sprintf("user-space memory per idle keep-alive connection (bytes, %s open, lower is better)", idleconns)
set style data boxes
set boxwidth 0.6
set logscale y
set yrange [10:*]
set key off
plot datafile using 0:(column(4+2*nprof) < 10 ? 10 : column(4+2*nprof)):xtic(1) with boxes lc rgb "#7e57c2", \
     ''       using 0:(column(4+2*nprof) < 10 ? 10 : column(4+2*nprof)):(sprintf("%.0f", column(4+2*nprof))) \
              with labels offset 0,0.8
unset multiplot
