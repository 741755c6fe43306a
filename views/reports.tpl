{{%AUTOESCAPE context="HTML"}}
<div class="stack reports">
<div class="page-head">
<h1>Reports</h1>
<a class="btn" href="/admin/reports.csv?{{CSV_QUERY}}" download>Download CSV</a>
</div>
<form class="toolbar" method="get" action="/admin/reports" aria-label="Report dates">
<div class="field">
<label for="rep-from">From</label>
<input type="date" id="rep-from" name="from" value="{{FROM}}" required>
</div>
<div class="field">
<label for="rep-to">To</label>
<input type="date" id="rep-to" name="to" value="{{TO}}" required>
</div>
<button type="submit" class="btn">Show</button>
</form>
<p class="muted">From {{FROM}} to {{TO}} (UTC days). Times are service-level clock time: hours the ticket was open, not resolved or closed.</p>

<section class="card report" aria-labelledby="daily-h">
<h2 id="daily-h">Created and closed per day</h2>
<div class="report-pair">
{{>DAILY_CHART}}
<div class="table-wrap report-table" tabindex="0" role="region" aria-labelledby="daily-h">
<table aria-labelledby="daily-h">
<thead><tr><th scope="col">Day</th><th scope="col">Created</th><th scope="col">Closed</th></tr></thead>
<tbody>
{{#DAY}}
<tr><th scope="row"><time datetime="{{DAY}}">{{DAY}}</time></th><td>{{CREATED}}</td><td>{{CLOSED}}</td></tr>
{{/DAY}}
</tbody>
</table>
</div>
</div>
</section>

<section class="card report" aria-labelledby="first-h">
<h2 id="first-h">First response time</h2>
<div class="report-pair">
{{>FIRST_CHART}}
<div class="table-wrap report-table" tabindex="0" role="region" aria-labelledby="first-h">
<table aria-labelledby="first-h">
<thead><tr><th scope="col">Priority</th><th scope="col">Tickets</th><th scope="col">Median (h)</th><th scope="col">90th pct. (h)</th></tr></thead>
<tbody>
{{#FIRST_ROW}}
<tr><th scope="row">{{PRIORITY}}</th><td>{{N}}</td><td>{{MEDIAN}}</td><td>{{P90}}</td></tr>
{{/FIRST_ROW}}
</tbody>
</table>
</div>
</div>
</section>

<section class="card report" aria-labelledby="resolution-h">
<h2 id="resolution-h">Resolution time</h2>
<div class="report-pair">
{{>RESOLUTION_CHART}}
<div class="table-wrap report-table" tabindex="0" role="region" aria-labelledby="resolution-h">
<table aria-labelledby="resolution-h">
<thead><tr><th scope="col">Priority</th><th scope="col">Tickets</th><th scope="col">Median (h)</th><th scope="col">90th pct. (h)</th></tr></thead>
<tbody>
{{#RESOLUTION_ROW}}
<tr><th scope="row">{{PRIORITY}}</th><td>{{N}}</td><td>{{MEDIAN}}</td><td>{{P90}}</td></tr>
{{/RESOLUTION_ROW}}
</tbody>
</table>
</div>
</div>
</section>

<section class="card report" aria-labelledby="csat-h">
<h2 id="csat-h">Customer satisfaction per agent</h2>
<div class="report-pair">
{{>CSAT_CHART}}
<div class="table-wrap report-table" tabindex="0" role="region" aria-labelledby="csat-h">
<table aria-labelledby="csat-h">
<thead><tr><th scope="col">Agent</th><th scope="col">Ratings</th><th scope="col">Average (1–5)</th></tr></thead>
<tbody>
{{#CSAT_ROW}}
<tr><th scope="row">{{AGENT}}</th><td>{{N}}</td><td>{{AVG}}</td></tr>
{{/CSAT_ROW}}
</tbody>
</table>
{{#NO_CSAT}}
<p class="empty">No ratings in this range</p>
{{/NO_CSAT}}
</div>
</div>
</section>

<section class="card report" aria-labelledby="backlog-h">
<h2 id="backlog-h">Open backlog now, by priority and age</h2>
<div class="report-pair">
{{>BACKLOG_CHART}}
<div class="table-wrap report-table" tabindex="0" role="region" aria-labelledby="backlog-h">
<table aria-labelledby="backlog-h">
<thead><tr><th scope="col">Priority</th>{{#AGE_HEAD}}<th scope="col">{{AGE}}</th>{{/AGE_HEAD}}<th scope="col">Total</th></tr></thead>
<tbody>
{{#BACKLOG_ROW}}
<tr><th scope="row">{{PRIORITY}}</th>{{#AGE_CELL}}<td>{{COUNT}}</td>{{/AGE_CELL}}<td>{{TOTAL}}</td></tr>
{{/BACKLOG_ROW}}
</tbody>
</table>
</div>
</div>
</section>
</div>
