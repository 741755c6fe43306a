Subject: [#{{TICKET}}] Overdue: {{TARGET}} of {{SUBJECT}}

Hello,

Ticket #{{TICKET}}, "{{SUBJECT}}" ({{PRIORITY}} priority, agent: {{AGENT}}),
missed its {{TARGET}} target: it was due at {{DUE}}.

  {{BASE_URL}}/tickets/{{TICKET}}

-- 
{{SITE_NAME}}
