# ctest fixture for parquet_duckdb: writes the sample files tests/js/parquet_check.mjs reads.
#   cmake -DSAMPLE=<usagedb_parquet_sample> -DDIR=<out dir> -P parquet_js_fixture.cmake
file(REMOVE_RECURSE ${DIR})
file(MAKE_DIRECTORY ${DIR})
function(run_sample name)
  execute_process(COMMAND ${SAMPLE} ${DIR}/${name}.parquet --expected ${DIR}/${name}.jsonl ${ARGN}
                  RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "usagedb_parquet_sample ${name} failed: ${rc}")
  endif()
endfunction()
# Defaults: one row group, dictionary pages for the low-cardinality columns.
run_sample(sample --rows 3000 --seed 1)
# Several row groups (pruning), many small pages, and dictionaries that overflow into PLAIN.
run_sample(multi --rows 5000 --seed 2 --rows-per-group 1000 --page-rows 300 --dictionary-bytes 2048)
# No rows at all.
run_sample(empty --empty)
