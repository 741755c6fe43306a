#!/bin/sh
# run.sh SECONDS RESULTFILE|- BINARY... — run each libFuzzer target for
# SECONDS, one after the other, on one core.  Per target NAME (fuzz_NAME):
#   build/fuzz/corpus/NAME/     the working corpus (new inputs land here)
#   test/fuzz/corpus/NAME/      the committed seeds and regression inputs
#   test/fuzz/NAME.dict         a dictionary, when there is one
#   build/fuzz/artifacts/NAME/  crash, leak, timeout and OOM reproducers
#   build/fuzz/logs/NAME.log    libFuzzer's output
# A target passes when libFuzzer ends without finding anything.  With a
# RESULTFILE, "passed failed" (one count per target) is written to it.
# Exit status: 0 when every target passed.
secs=$1
results=$2
shift 2
B=build/fuzz
passed=0
failed=0

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
if [ -z "$ASAN_SYMBOLIZER_PATH" ] && [ -x /usr/lib/llvm-14/bin/llvm-symbolizer ]; then
	export ASAN_SYMBOLIZER_PATH=/usr/lib/llvm-14/bin/llvm-symbolizer
fi

for bin in "$@"; do
	prog=$(basename "$bin")
	name=${prog#fuzz_}
	mkdir -p "$B/corpus/$name" "$B/artifacts/$name" "$B/logs"
	seeds=""
	[ -d "test/fuzz/corpus/$name" ] && seeds="test/fuzz/corpus/$name"
	dict=""
	[ -f "test/fuzz/$name.dict" ] && dict="-dict=test/fuzz/$name.dict"
	log="$B/logs/$name.log"
	# shellcheck disable=SC2086
	"$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
		-print_final_stats=1 -artifact_prefix="$B/artifacts/$name/" $dict \
		"$B/corpus/$name" $seeds >"$log" 2>&1
	rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	cov=$(grep -E '^#[0-9]+' "$log" | tail -n 1 | sed -n 's/.*\(cov: [0-9]*\).*\(corp: [^ ]*\).*/\1 \2/p')
	if [ "$rc" -eq 0 ]; then
		passed=$((passed + 1))
		echo "PASS $prog: ${execs:-?} runs in ${secs} s, $cov"
	else
		failed=$((failed + 1))
		echo "FAIL $prog: exit status $rc after ${execs:-?} runs; log $log"
		grep -E '^(==[0-9]+==ERROR|SUMMARY|.*invariant failed|.*runtime error)' "$log" | head -n 5
		grep -E '^ +#[0-9]+ ' "$log" | head -n 15
		grep -E "Test unit written to|^0x" "$log" | cut -c 1-300 | head -n 3
	fi
done

if [ "$results" != "-" ]; then
	mkdir -p "$(dirname "$results")"
	echo "$passed $failed" >"$results"
fi
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
