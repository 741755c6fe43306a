{{%AUTOESCAPE context="HTML"}}
<div class="page-head">
<h1 id="tickets-h">{{HEADING}}</h1>
{{#CAN_CREATE}}
<a class="btn btn-primary" href="/tickets/new">New ticket</a>
{{/CAN_CREATE}}
</div>
<form class="toolbar" method="get" action="/tickets" role="search" aria-label="Filter tickets">
{{#HAS_CUSTOMER}}
<input type="hidden" name="customer" value="{{CUSTOMER_ID}}">
{{/HAS_CUSTOMER}}
{{#HAS_ASSIGNED}}
<input type="hidden" name="assigned" value="{{ASSIGNED}}">
{{/HAS_ASSIGNED}}
<div class="field field-status">
<label for="filter-status">Status</label>
<select id="filter-status" name="status">
<option value="open"{{#SEL_OPEN}} selected{{/SEL_OPEN}}>Open</option>
<option value="resolved"{{#SEL_RESOLVED}} selected{{/SEL_RESOLVED}}>Resolved</option>
<option value="closed"{{#SEL_CLOSED}} selected{{/SEL_CLOSED}}>Closed</option>
<option value="all"{{#SEL_ALL}} selected{{/SEL_ALL}}>All</option>
{{#STAFF}}
<option value="overdue"{{#SEL_OVERDUE}} selected{{/SEL_OVERDUE}}>Overdue</option>
{{/STAFF}}
</select>
</div>
<div class="field">
<label for="filter-q">Search</label>
<input type="search" id="filter-q" name="q" value="{{Q}}" maxlength="200" spellcheck="false" placeholder="Words, a prefix*, or #number">
</div>
<button type="submit" class="btn">Filter</button>
</form>
{{#ASSIGN_PICKER}}
<form id="assign-form" class="toolbar assign-picker" method="post" aria-label="Assign tickets">
<input type="hidden" name="csrf_token" value="{{CSRF}}">
<input type="hidden" name="next" value="{{NEXT}}">
<div class="field">
<label for="assign-agent">Assign to</label>
<select id="assign-agent" name="agent_id" required>
<option value="">Choose an agent</option>
{{#AGENT_OPTION}}
<option value="{{AGENT_ID}}">{{AGENT_NAME}}</option>
{{/AGENT_OPTION}}
</select>
</div>
<p class="hint">then press Assign on the ticket's row</p>
</form>
{{/ASSIGN_PICKER}}
{{#EMPTY}}
<p class="empty">{{MSG}}</p>
{{#SUGGEST}}
<p class="empty suggest">Search again without one word:
{{#DROP}}<a href="{{URL}}">{{WORDS}}</a>{{#DROP_separator}}, {{/DROP_separator}}{{/DROP}}</p>
{{/SUGGEST}}
{{/EMPTY}}
<div class="table-wrap">
<table class="table-cards ticket-list" aria-labelledby="tickets-h">
<thead>
<tr>
<th scope="col">Number</th>
<th scope="col">Subject</th>
<th scope="col">Status</th>
<th scope="col">Priority</th>
{{#STAFF}}
<th scope="col">Customer</th>
{{/STAFF}}
<th scope="col">Agent</th>
<th scope="col">Created</th>
<th scope="col">Last activity</th>
{{#STAFF}}
<th scope="col">Service level</th>
{{/STAFF}}
</tr>
</thead>
<tbody>
{{#TICKET}}
<tr>
<td data-label="Number" class="nowrap">#{{ID}}</td>
<td data-label="Subject" class="ticket-subject"><a href="/tickets/{{ID}}">{{#PLAIN_SUBJECT}}{{SUBJECT}}{{/PLAIN_SUBJECT}}{{#HL_SUBJECT}}{{#MARKED}}<mark>{{/MARKED}}{{TEXT}}{{#MARKED}}</mark>{{/MARKED}}{{/HL_SUBJECT}}</a>{{#EXCERPT}}
<p class="excerpt">{{#NOTE}}<span class="excerpt-what">Note:</span> {{/NOTE}}{{#HL}}{{#MARKED}}<mark>{{/MARKED}}{{TEXT}}{{#MARKED}}</mark>{{/MARKED}}{{/HL}}</p>{{/EXCERPT}}</td>
<td data-label="Status"><span class="badge badge-{{STATUS}}">{{STATUS}}</span></td>
<td data-label="Priority"><span class="prio prio-{{PRIORITY}}">{{PRIORITY}}</span></td>
{{#ROW_STAFF}}
<td data-label="Customer">{{CUSTOMER}}</td>
{{/ROW_STAFF}}
<td data-label="Agent"><div class="cell-stack">
<span>{{AGENT}}</span>
{{#ROW_ASSIGN}}
<button type="submit" form="assign-form" formaction="/tickets/{{ID}}/assign" class="btn btn-small" aria-label="Assign ticket #{{ID}}" data-confirm="Assign ticket #{{ID}} to the chosen agent?">Assign</button>
{{/ROW_ASSIGN}}
</div></td>
<td data-label="Created" class="nowrap"><time datetime="{{CREATED_ISO}}" title="{{CREATED_TEXT}}">{{CREATED_AGO}}</time></td>
<td data-label="Last activity" class="nowrap"><time datetime="{{ACTIVITY_ISO}}" title="{{ACTIVITY_TEXT}}">{{ACTIVITY_AGO}}</time></td>
{{#ROW_DUE}}
<td data-label="Service level" class="nowrap">{{#SLA}}<span class="sla{{#SLA_OVERDUE}} sla-overdue{{/SLA_OVERDUE}}"><time datetime="{{SLA_ISO}}">{{SLA_TEXT}}</time></span>{{/SLA}}{{#NO_SLA}}<span class="muted">–</span>{{/NO_SLA}}</td>
{{/ROW_DUE}}
</tr>
{{/TICKET}}
</tbody>
</table>
</div>
<div class="pager">
{{#FIRST_PAGE}}
<a href="{{URL}}">First page</a>
{{/FIRST_PAGE}}
{{#NEXT_PAGE}}
<a class="btn pager-next" href="{{URL}}" rel="next">Next page</a>
{{/NEXT_PAGE}}
</div>
